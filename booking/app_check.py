"""Firebase App Check verification for booking endpoints.

``verify_app_check_token`` wraps ``firebase_admin.app_check.verify_token`` (RS256 signature against
Google's JWKS, cached 6 h per App; ``typ`` JWT; ``aud`` containing ``projects/<project id>``; issuer
under ``https://firebaseappcheck.googleapis.com/``; expiry) and turns every way a client token can be
bad into ``AppCheckRejected``, so the HTTP layer has one exception to map to 401.
"""

from __future__ import annotations

from typing import Any

import firebase_admin
import jwt
from firebase_admin import app_check

_ISSUER_PREFIX = "https://firebaseappcheck.googleapis.com/"


class AppCheckRejected(Exception):
    """The request's App Check token is not acceptable.

    ``reason`` is short and safe to log: ``"missing"`` (no token), ``"invalid"`` (malformed, badly
    signed, expired, wrong project, unknown key) or ``"unavailable"`` (Google's key set could not be
    fetched, so the token could not be checked: a server-side problem, not the client's).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_app_check_token(token: str | None, *, app: firebase_admin.App | None = None) -> dict[str, Any]:
    """Returns the verified claims (``sub`` and ``app_id`` = the Firebase app id) or raises.

    Raises ``AppCheckRejected`` for a bad token.  A Firebase App without a project id is a deployment
    error, not a bad token: that ``ValueError`` (like the one for a missing default App) propagates.
    """
    if token is None or (isinstance(token, str) and not token.strip()):
        raise AppCheckRejected("missing")
    firebase_app = app if app is not None else firebase_admin.get_app()
    if not firebase_app.project_id:
        raise ValueError(f"Firebase App {firebase_app.name!r} has no project id: App Check cannot run")
    try:
        claims = app_check.verify_token(token, app=firebase_app)
    except jwt.PyJWKClientConnectionError as exc:  # JWKS fetch failed (network, 5xx)
        raise AppCheckRejected("unavailable") from exc
    except (ValueError, jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
        raise AppCheckRejected("invalid") from exc

    # The SDK only checks that iss *starts with* the App Check prefix.  Firebase issues
    # iss = <prefix><project number> with "projects/<project number>" first in aud; insist on that.
    issuer = claims.get("iss")
    project_number = issuer[len(_ISSUER_PREFIX) :] if isinstance(issuer, str) else ""
    if not project_number.isdigit() or f"projects/{project_number}" not in claims.get("aud", []):
        raise AppCheckRejected("invalid")
    return claims
