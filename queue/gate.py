"""The stream gate: over-cap anonymous display streams refused before Flask builds a request.

A flood of anonymous `GET …/queue/stream` must not queue behind itself in Flask (hooks, limiter, Babel,
a Redis round trip each) while the API waits: this WSGI middleware answers the refusals at once from the
worker's memory (`StreamHub.refusal_from_memory`), in the same envelope, status, headers and language as
Flask's own. It only ever refuses: what it lets through, Flask checks exactly (the caps across workers in
Redis, the display token). A request carrying a display token always goes through, to be verified there.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from flask import Flask
from flask_babel import force_locale
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from app.errors import AppError, envelope
from app.metrics import count_refusal
from app.tokens import DISPLAY_TOKEN_PREFIX

from .streams import get_hub

# The route of `ticketing.routes.queue_stream`, under the API blueprint's prefix.
STREAM_PATH = re.compile(r"/api/v1/centres/[^/]+/queue/stream")
LANGUAGES = ("ar", "en")

WSGIApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]


class StreamGate:
    """WSGI middleware in front of the Flask app (inside ProxyFix, so `REMOTE_ADDR` is the client's)."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.default_language = str(app.config.get("BABEL_DEFAULT_LOCALE") or "ar")
        # Anonymous stream requests inside Flask now (this process), by address and in all.
        self._arriving: dict[str, int] = {}
        self._arriving_total = 0
        self._lock = threading.Lock()
        # Rendered once per (refusal, reason, language): a refusal costs a dict look-up, not an app context.
        self._bodies: dict[tuple[str, str, str], bytes] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not (
            environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            and STREAM_PATH.fullmatch(environ.get("PATH_INFO", ""))
            and not carries_display_token(environ)
        ):
            return self.wsgi_app(environ, start_response)
        address = environ.get("REMOTE_ADDR") or "unknown"
        refused = get_hub(self.app).refusal_from_memory(
            address, arriving_from_address=self._arriving.get(address, 0), arriving=self._arriving_total
        )
        if refused is not None:
            return self._refuse(refused, environ, start_response)
        # Counted until Flask has answered (the screen is then open, or refused): 2,000 connections arriving
        # at once must not all pass before the first of them is counted.
        with self._lock:
            self._arriving[address] = self._arriving.get(address, 0) + 1
            self._arriving_total += 1
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            with self._lock:
                self._arriving_total -= 1
                left = self._arriving.get(address, 1) - 1
                if left > 0:
                    self._arriving[address] = left
                else:
                    self._arriving.pop(address, None)

    def _refuse(self, error: AppError, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        language = self.language(environ)
        body = self.body(error, language)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Content-Language", language),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *error.headers.items(),
        ]
        count_refusal(error.status, error.code)
        start_response(f"{error.status} {_REASONS[error.status]}", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def language(self, environ: dict[str, Any]) -> str:
        """`Accept-Language` as Flask's locale selector reads it; an anonymous caller's default otherwise."""
        header = environ.get("HTTP_ACCEPT_LANGUAGE")
        if not header:
            return self.default_language
        return parse_accept_header(header, LanguageAccept).best_match(LANGUAGES) or self.default_language

    def body(self, error: AppError, language: str) -> bytes:
        """The refusal's envelope in `language`, rendered with Flask-Babel the first time only."""
        key = (error.code, str(error.details.get("reason", "")), language)
        body = self._bodies.get(key)
        if body is None:
            with self.app.app_context(), force_locale(language):
                message = error.render_message()
                body = json.dumps(envelope(error.code, message, error.details), ensure_ascii=False).encode()
            self._bodies[key] = body
        return body


_REASONS = {429: "TOO MANY REQUESTS", 503: "SERVICE UNAVAILABLE"}


def carries_display_token(environ: dict[str, Any]) -> bool:
    """A display token in `Authorization: Bearer dsp_…` or `?token=dsp_…` (verified later, by Flask)."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip().startswith(DISPLAY_TOKEN_PREFIX):
        return True
    query = environ.get("QUERY_STRING", "")
    if "token=" not in query:
        return False
    return parse_qs(query).get("token", [""])[0].startswith(DISPLAY_TOKEN_PREFIX)


def gate_streams(app: Flask, wsgi_app: WSGIApp) -> WSGIApp:
    """Wrap the app's WSGI callable with the stream gate (the factory calls it by name)."""
    return StreamGate(app, wsgi_app)
