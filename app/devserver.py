"""`flask run` (make run) without the `Server: Werkzeug/… Python/…` banner.

Werkzeug's development server adds the header in `BaseHTTPRequestHandler.send_response`, and `flask run`
offers no way to pass another request handler, so the server module's default handler is swapped for a
subclass that sends the same answer without it, only in the process `flask run` serves from.
gunicorn (production) sends `Server: gunicorn`, without its version, and cannot be told not to.
"""

from __future__ import annotations

import werkzeug.serving


class QuietRequestHandler(werkzeug.serving.WSGIRequestHandler):
    """Werkzeug's handler, minus the Server header."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())


def quiet_flask_run() -> None:
    """Make the development server `flask run` is about to start use QuietRequestHandler."""
    werkzeug.serving.WSGIRequestHandler = QuietRequestHandler
