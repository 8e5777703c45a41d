"""JSON logs with a request id on every line written while a request is served."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid

from flask import Flask, g, has_request_context, request
from werkzeug.exceptions import BadRequest

REQUEST_ID_HEADER = "X-Request-ID"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, ready for a log shipper."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is None and has_request_context():
            request_id = g.get("request_id")
        if request_id:
            entry["request_id"] = request_id
        for key in ("method", "path", "status", "duration_ms", "job"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        fields = getattr(record, "fields", None)  # extra={"fields": {...}}: structured event fields
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


JsonFormatter.converter = time.gmtime


def configure_logging(level: str, json_logs: bool) -> None:
    """Send the root logger to stderr, as JSON unless told otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    handler.sanad = True  # replaced on the next configuration; other handlers (pytest's, a shipper's) stay
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "sanad", False)] + [handler]
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel("WARNING")
    logging.getLogger("alembic.runtime.plugins").setLevel("WARNING")


def register_request_ids(app: Flask) -> None:
    """Take the caller's X-Request-ID (or make one), echo it, and log each request once."""
    access = logging.getLogger("sanad.access")

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming[:64] if incoming.isascii() and incoming.strip() else uuid.uuid4().hex
        g.started = time.perf_counter()
        # NUL characters cannot be stored by PostgreSQL and no legitimate client sends them.
        if (
            "\x00" in request.path
            or "\x00" in request.query_string.decode("utf-8", "replace")
            or any("\x00" in value for _, value in request.headers.items())
        ):
            raise BadRequest()

    @app.after_request
    def _finish(response):
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        if request.path not in ("/healthz", "/metrics"):
            access.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(
                        (time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1
                    ),
                },
            )
        return response
