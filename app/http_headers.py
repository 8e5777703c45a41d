"""Response headers every page and API answer carries: the browser policies (flask-talisman), no caching of
tokens or personal answers, and Retry-After only where there is something to retry."""

from __future__ import annotations

from flask import Flask, request
from flask_talisman import DENY, Talisman

from app.config import Settings

# Pages load only their own files: scripts from static files (no inline script, so nothing to hash),
# the display's server-sent events from this origin, Swagger UI's icons as data: images.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
REFERRER_POLICY = "no-referrer"
# Answers that hold a token or a person's data never sit in a browser or proxy cache.
NO_STORE_PREFIXES = ("/api/v1/auth/",)


def register_security_headers(app: Flask, settings: Settings) -> None:
    """CSP, X-Frame-Options DENY, nosniff and Referrer-Policy everywhere; HSTS only in production (and only on
    HTTPS requests: the TLS front end normally sends it, see README); never a redirect to HTTPS here."""
    # One Talisman per app: it keeps its options on itself (tests build apps with different settings).
    app.extensions["talisman"] = Talisman(
        app,
        force_https=False,
        frame_options=DENY,
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy=REFERRER_POLICY,
        strict_transport_security=settings.is_production,
        session_cookie_secure=settings.is_production,
        x_content_type_options=True,
    )

    @app.after_request
    def _no_store_for_tokens_and_personal_answers(response):
        personal = "Authorization" in request.headers or request.path.startswith(NO_STORE_PREFIXES)
        if personal and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response


def register_retry_after_only_on_refusals(app: Flask) -> None:
    """Flask-Limiter sends Retry-After on every answer it counts: keep it on 429 and 503 only.

    Registered before the limiter: Flask runs after-request functions last-registered first, so this one
    sees the limiter's headers.
    """

    @app.after_request
    def _drop_retry_after_on_success(response):
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response
