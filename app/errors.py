"""One envelope (`{"error": {"code", "message", "details"}}`) for every error, in the asked language."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from typing import Any

import marshmallow as ma
import redis
from flask import Flask, current_app, g, jsonify
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from app.metrics import count_rate_limited, count_refusal
from app.schemas import LIBRARY_MESSAGES

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

    def render_message(self) -> str:
        """The message in the request's language (subclasses put the facts of `details` into it)."""
        return translated(self.message)


def _locale():
    from flask_babel import get_locale

    return get_locale() or "ar"


# (locale, msgid) -> text: a refusal's fixed message looked up in the catalog once per process and
# language (the catalogs never change while the app runs), not through Flask-Babel on every refusal.
_FIXED_TEXTS: dict[tuple[str, str], str] = {}


def translated(message: Any) -> str:
    """`message` (a lazy gettext string or plain text) in the request's language."""
    if isinstance(message, LazyString) and message._func is gettext and not message._kwargs:
        key = (str(_locale()), message._args[0])
        text = _FIXED_TEXTS.get(key)
        if text is None:
            text = _FIXED_TEXTS[key] = str(message)
        return text
    return str(message)


def local_time_text(iso: str) -> str:
    """`2026-12-01T10:30:00+03:00` as the caller reads a time ("10:30 AM", "١٠:٣٠ ص"), in its own offset."""
    import babel.dates

    return babel.dates.format_time(dt.datetime.fromisoformat(iso), "short", locale=_locale())


def local_date_text(value: str | dt.date) -> str:
    """A day (an ISO date, or the local day of an ISO instant) as the caller reads it ("1 December 2026")."""
    import babel.dates

    day = dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return babel.dates.format_date(day, "long", locale=_locale())


def local_datetime_text(iso: str) -> str:
    """An ISO instant as its local day and time, in the caller's language."""
    return f"{local_date_text(iso)} {local_time_text(iso)}"


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


class Unavailable(AppError):
    """A store the request needs (PostgreSQL) cannot be reached: the client should retry, not give up."""

    status = 503
    code = "unavailable"
    message = _l("The service is briefly unavailable. Please try again in a moment.")


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
    503: ("unavailable", Unavailable.message),
}

# Errors that mean a store is unreachable (refused, reset, timed out, pool exhausted), not a bug.
_STORE_DOWN = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    sa_exc.PendingRollbackError,
    redis.ConnectionError,
    redis.TimeoutError,
)


def store_unreachable(error: BaseException | None) -> bool:
    """Whether `error` (or what it wraps) says PostgreSQL or Redis could not be reached."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, _STORE_DOWN):
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        error = getattr(error, "original_exception", None) or error.__cause__
        seen += 1
    return False


def unavailable_response():
    """503 `unavailable` in the envelope, with `Retry-After`."""
    try:
        retry = int(current_app.config.get("UNAVAILABLE_RETRY_AFTER_SECONDS", 2))
    except (TypeError, ValueError):
        retry = 2
    return app_error_response(Unavailable(headers={"Retry-After": str(retry)}))


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


@functools.cache
def _library_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """marshmallow's message templates as patterns that give back the values put into them."""
    patterns = []
    for template in LIBRARY_MESSAGES:
        if "{" not in template:
            continue
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+?)", re.escape(template))
        patterns.append((re.compile(f"^{regex}$"), template))
    return tuple(patterns)


def localise_field_message(message: str) -> str:
    """One field error in the request's language: a catalog message as it is, a library template refilled."""
    translated = gettext(message)
    if translated != message:
        return translated
    for pattern, template in _library_patterns():
        match = pattern.match(message)
        if match:
            return gettext(template).format(**match.groupdict())
    return message


def localise_field_messages(messages: Any) -> Any:
    """Every message of a (nested) field-error structure in the request's language."""
    if isinstance(messages, str):
        return localise_field_message(messages)
    if isinstance(messages, dict):
        return {key: localise_field_messages(value) for key, value in messages.items()}
    if isinstance(messages, list | tuple):
        return [localise_field_messages(value) for value in messages]
    return messages


def http_error_response(error: HTTPException):
    """Turn any Werkzeug/webargs/Flask-Limiter HTTP error into the envelope, keeping its headers."""
    status = error.code or 500
    if status == 500 and store_unreachable(getattr(error, "original_exception", None)):
        # An outage raised outside the view (an after-request hook on a dead Redis or database).
        return unavailable_response()
    code, message = _HTTP_ERRORS.get(status, ("http_error", error.description or error.name))
    details: dict[str, Any] = {}
    headers: dict[str, str] = {}
    data = getattr(error, "data", None) or {}
    if "messages" in data:  # webargs validation errors, keyed by location
        messages = data["messages"]
        fields = messages.get("json", messages) if isinstance(messages, dict) else messages
        details = {"fields": localise_field_messages(fields)}
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
    count_refusal(status, code)
    if status == 429:
        count_rate_limited(_limit_name(error))
    response = jsonify(envelope(code, message, details))
    response.status_code = status
    for name, value in headers.items():
        response.headers[name] = value
    _challenge(response, code)
    return response


def _limit_name(error: HTTPException) -> str:
    """The limit a 429 tripped: its scope (a named limit such as `holds-phone`), else its text."""
    limit = getattr(error, "limit", None)
    scope = getattr(limit, "scope", None)
    if isinstance(scope, str) and scope:
        return scope
    return str(getattr(limit, "limit", "")) or "unknown"


def _retry_after_seconds(error: HTTPException) -> int:
    limit = getattr(error, "limit", None)
    try:
        return max(1, int(limit.limit.get_expiry())) if limit is not None else 60
    except Exception:  # the limit object's shape is Flask-Limiter's, not ours
        return 60


def app_error_response(error: AppError):
    """Render a domain refusal."""
    response = jsonify(envelope(error.code, error.render_message(), error.details))
    response.status_code = error.status
    count_refusal(error.status, error.code)
    for name, value in error.headers.items():
        response.headers[name] = value
    _challenge(response, error.code)
    return response


# RFC 6750: a 401 names the scheme it wants, and says when the token it got was the problem.
_TOKEN_ERRORS = {"invalid_token", "invalid_refresh_token"}


def _challenge(response, code: str) -> None:
    if response.status_code == 401 and "WWW-Authenticate" not in response.headers:
        challenge = 'Bearer realm="sanad"'
        if code in _TOKEN_ERRORS:
            challenge += ', error="invalid_token"'
        response.headers["WWW-Authenticate"] = challenge


def unexpected_error_response(error: Exception):
    """A 500 without a traceback for the client; the log keeps it, with the request id."""
    if store_unreachable(error):
        # An outage, not a bug: one line in the log, and an answer the client knows how to retry.
        log.warning("store unreachable: %s", type(error).__name__, extra={"request_id": g.get("request_id")})
        return unavailable_response()
    if isinstance(error, HTTPException):
        return http_error_response(error)
    log.exception("unhandled error", extra={"request_id": g.get("request_id")})
    code, message = _HTTP_ERRORS[500]
    count_refusal(500, code)
    response = jsonify(envelope(code, message, {"request_id": g.get("request_id")}))
    response.status_code = 500
    return response


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as the envelope."""
    app.register_error_handler(AppError, app_error_response)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(Exception, unexpected_error_response)
