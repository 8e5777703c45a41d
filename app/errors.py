"""The error envelope of SPEC §5 for every error, localised by Accept-Language."""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask, g, jsonify
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    """A refusal the citizen should understand: a code, an HTTP status and a localised message."""

    status: int = 400
    code: str = "bad_request"
    message: Any = _l("The request could not be processed.")

    def __init__(
        self,
        message: Any = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        # Keep the message lazy: it is rendered in the caller's language when the response is built
        # (and raising outside a request, from a job or a shell, must not need a locale).
        super().__init__(code or self.code)
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}
        self.headers = headers or {}


class ValidationFailed(AppError):
    status = 422
    code = "validation_error"
    message = _l("Some fields are missing or invalid.")


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    message = _l("Sign in to continue.")


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    message = _l("You are not allowed to do this.")


class NotFound(AppError):
    status = 404
    code = "not_found"
    message = _l("Not found.")


class Conflict(AppError):
    status = 409
    code = "conflict"
    message = _l("This conflicts with the current state.")


# Messages for errors raised by Werkzeug, webargs or Flask-Limiter rather than by our services.
_HTTP_ERRORS: dict[int, tuple[str, Any]] = {
    400: ("bad_request", _l("The request could not be read.")),
    401: ("unauthorized", Unauthorized.message),
    403: ("forbidden", Forbidden.message),
    404: ("not_found", NotFound.message),
    405: ("method_not_allowed", _l("This method is not allowed here.")),
    409: ("conflict", Conflict.message),
    413: ("payload_too_large", _l("The request is too large.")),
    415: ("unsupported_media_type", _l("Send the request body as JSON.")),
    422: ("validation_error", ValidationFailed.message),
    429: ("rate_limited", _l("Too many requests. Please wait and try again.")),
    500: ("internal_error", _l("Something went wrong on our side. Please try again later.")),
}


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "Stable machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "Localised message (ar or en)"})
    details = ma.fields.Dict(metadata={"description": "Field errors or facts about the refusal"})


class ErrorEnvelopeSchema(ma.Schema):
    """`{"error": {"code", "message", "details"}}` — documented once, used by every error."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


def envelope(code: str, message: Any, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the error body."""
    return {"error": {"code": code, "message": str(message), "details": details or {}}}


def http_error_response(error: HTTPException):
    """Turn any Werkzeug/webargs/Flask-Limiter HTTP error into the envelope, keeping its headers."""
    status = error.code or 500
    code, message = _HTTP_ERRORS.get(status, ("http_error", error.description or error.name))
    details: dict[str, Any] = {}
    headers: dict[str, str] = {}
    data = getattr(error, "data", None) or {}
    if "messages" in data:  # webargs validation errors, keyed by location
        messages = data["messages"]
        details = {"fields": messages.get("json", messages) if isinstance(messages, dict) else messages}
    if data.get("headers"):
        headers.update(data["headers"])
    # Werkzeug attaches headers such as `Allow` (405) and `Retry-After` (429) to the exception.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            headers[name] = value
    if status == 429:
        limit = getattr(error, "limit", None)
        if limit is not None:
            details["limit"] = str(limit.limit)
        headers.setdefault("Retry-After", str(_retry_after_seconds(error)))
    if status >= 500:
        log.error("http error %s", status, extra={"request_id": g.get("request_id")})
    response = jsonify(envelope(code, message, details))
    response.status_code = status
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _retry_after_seconds(error: HTTPException) -> int:
    limit = getattr(error, "limit", None)
    try:
        return max(1, int(limit.limit.get_expiry())) if limit is not None else 60
    except Exception:  # the limit object's shape is Flask-Limiter's, not ours
        return 60


def app_error_response(error: AppError):
    """Render a domain refusal."""
    response = jsonify(envelope(error.code, error.message, error.details))
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def unexpected_error_response(error: Exception):
    """A 500 without a traceback for the client; the log keeps it, with the request id."""
    if isinstance(error, HTTPException):
        return http_error_response(error)
    log.exception("unhandled error", extra={"request_id": g.get("request_id")})
    code, message = _HTTP_ERRORS[500]
    response = jsonify(envelope(code, message, {"request_id": g.get("request_id")}))
    response.status_code = 500
    return response


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as the envelope."""
    app.register_error_handler(AppError, app_error_response)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(Exception, unexpected_error_response)
