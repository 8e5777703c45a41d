"""Minting bearer secrets: access JWTs (PyJWT, pinned algorithm, key ids), opaque kiosk and display tokens.

Below both `app.security` (which checks them on each request) and `app.accounts` (which issues them), so
neither imports the other's internals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import jwt
from flask import current_app

from app import clock

ALGORITHM = "HS256"
KIOSK_TOKEN_PREFIX = "ksk_"
DISPLAY_TOKEN_PREFIX = "dsp_"  # hall displays: opens one centre's live stream, nothing else


def hash_token(token: str) -> str:
    """SHA-256 of a high-entropy bearer secret (refresh and kiosk tokens)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_opaque_token(prefix: str = "") -> str:
    """A random bearer secret."""
    return prefix + secrets.token_urlsafe(32)


def phone_key(phone: str) -> str:
    """A keyed digest of a phone number: rate limits count per phone without the number in any token."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, phone.encode(), hashlib.sha256).hexdigest()[:24]


def issue_access_token(
    *,
    account_id: int,
    role: str,
    centre_id: str | None,
    language: str,
    phone: str | None = None,
    session_id: str | None = None,
) -> tuple[str, int]:
    """A short-lived access JWT signed with the active key; returns (token, lifetime in seconds).

    With `phone`, the token carries its keyed digest (`phk`), so per-phone limits need no database read;
    with `session_id` (`sid`), ending that session refuses the token (app/accounts/revocation.py).
    """
    cfg = current_app.config
    now = clock.now()
    lifetime = int(cfg["ACCESS_TOKEN_SECONDS"])
    claims = {
        "iss": cfg["JWT_ISSUER"],
        "aud": cfg["JWT_AUDIENCE"],
        "sub": str(account_id),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()) - 5,
        "exp": int((now + dt.timedelta(seconds=lifetime)).timestamp()),
        "role": role,
        "lang": language,
        "jti": secrets.token_hex(8),
    }
    if centre_id:
        claims["cid"] = centre_id
    if phone:
        claims["phk"] = phone_key(phone)
    if session_id:
        claims["sid"] = session_id
    kid = cfg["JWT_ACTIVE_KID"]
    token = jwt.encode(claims, cfg["JWT_KEYS"][kid], algorithm=ALGORITHM, headers={"kid": kid})
    return token, lifetime
