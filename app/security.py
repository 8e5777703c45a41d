"""Who is calling: access JWTs (PyJWT, pinned algorithm, key ids), kiosk tokens and role checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import jwt
from flask import current_app, g, request
from flask_babel import lazy_gettext as _l
from flask_smorest.utils import deepupdate
from sqlalchemy import Row, bindparam, select

from app import clock
from app.accounts import revocation
from app.accounts.models import KioskDevice
from app.dialect import statement_connection
from app.errors import Forbidden, Unauthorized
from app.tokens import ALGORITHM, KIOSK_TOKEN_PREFIX, hash_token

# A staff right is also a supervisor's; nothing else is implied.
ROLE_INCLUDES = {"staff": {"staff", "supervisor"}}


class InvalidToken(Unauthorized):
    code = "invalid_token"
    message = _l("Your session is not valid. Please sign in again.")


class SessionEnded(InvalidToken):
    code = "session_ended"
    message = _l("You have signed out of this session. Please sign in again.")


class CentreForbidden(Forbidden):
    code = "centre_forbidden"
    message = _l("You can act only in your own centre.")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: an account (citizen, staff, supervisor, admin) or a kiosk."""

    id: int
    role: str
    centre_id: str | None = None
    language: str = "ar"
    phone_key: str | None = None  # a keyed digest of the account's phone, for per-phone rate limits
    session_id: str | None = None  # the sign-in session (refresh family) the access token belongs to

    @property
    def is_kiosk(self) -> bool:
        return self.role == "kiosk"


VERIFIED_CACHE_SIZE = 8192


def decode_access_token(token: str) -> dict[str, Any]:
    """Verify signature, algorithm, issuer, audience and times; any doubt is a 401.

    A token whose signature and claims verified once is remembered per app (bounded), so a citizen's
    burst of requests pays the HMAC and the JSON parsing once; its times are checked on every use.
    """
    verified: dict[str, dict[str, Any]] = current_app.extensions.setdefault("verified_tokens", {})
    claims = verified.get(token)
    if claims is None:
        claims = _verify_access_token(token)
        if len(verified) >= VERIFIED_CACHE_SIZE:
            verified.clear()  # bounded: a cold start costs one verification per token again
        verified[token] = claims
    now = clock.now().timestamp()
    try:
        expired = float(claims["exp"]) <= now
        premature = float(claims.get("nbf", claims["iat"])) > now + 30
    except (TypeError, ValueError) as exc:
        raise InvalidToken() from exc
    if expired or premature:
        raise InvalidToken()
    return claims


def _verify_access_token(token: str) -> dict[str, Any]:
    cfg = current_app.config
    try:
        header = jwt.get_unverified_header(token)
        key = cfg["JWT_KEYS"].get(header.get("kid", ""))
        if key is None or header.get("alg") != ALGORITHM:
            raise InvalidToken()
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=cfg["JWT_AUDIENCE"],
            issuer=cfg["JWT_ISSUER"],
            # Times are checked below against our clock (which tests can shift), not PyJWT's.
            options={
                "require": ["exp", "iat", "sub", "iss", "aud"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    return claims


_KIOSK_BY_TOKEN = select(KioskDevice.id, KioskDevice.centre_id).where(
    KioskDevice.token_hash == bindparam("token_hash"), KioskDevice.revoked_at.is_(None)
)


def find_kiosk_by_token(token: str) -> Row | None:
    """The active kiosk a bearer token belongs to (`id`, `centre_id`): every request of a kiosk asks, so one
    prebuilt read of two columns, no session object, in autocommit on PostgreSQL (no BEGIN for it: a walk-in
    ticket then needs none at all). A revoked kiosk is refused at its next request."""
    with statement_connection() as connection:
        return connection.execute(_KIOSK_BY_TOKEN, {"token_hash": hash_token(token)}).first()


def _principal_from_request() -> Principal | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken()
    token = token.strip()
    if token.startswith(KIOSK_TOKEN_PREFIX):
        kiosk = find_kiosk_by_token(token)
        if kiosk is None:
            raise InvalidToken()
        return Principal(id=kiosk.id, role="kiosk", centre_id=kiosk.centre_id)
    claims = decode_access_token(token)
    if claims.get("role") not in {"citizen", "staff", "supervisor", "admin"}:
        raise InvalidToken()
    try:
        account_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise InvalidToken() from exc
    session_id = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    if session_id is not None and revocation.is_revoked(session_id):
        raise SessionEnded()
    return Principal(
        id=account_id,
        role=claims["role"],
        centre_id=claims.get("cid"),
        language=claims.get("lang", "ar"),
        phone_key=claims.get("phk") if isinstance(claims.get("phk"), str) else None,
        session_id=session_id,
    )


def current_principal() -> Principal | None:
    """The caller of this request (parsed once), or None when anonymous."""
    if "principal" not in g:
        g.principal = _principal_from_request()
    return g.principal


def role_allows(role: str, allowed: tuple[str, ...]) -> bool:
    """Whether `role` satisfies any of the `allowed` roles (supervisors have every staff right)."""
    return any(role in ROLE_INCLUDES.get(a, {a}) for a in allowed)


def require_principal(*roles: str) -> Principal:
    """The caller, who must be signed in and hold one of `roles` (any role when none are named)."""
    principal = current_principal()
    if principal is None:
        raise Unauthorized()
    if roles and not role_allows(principal.role, roles):
        raise Forbidden()
    return principal


def require_centre(principal: Principal, centre_id: str) -> None:
    """Staff, supervisors and kiosks act only inside their own centre; admins everywhere."""
    if principal.role == "admin":
        return
    if principal.centre_id != centre_id:
        raise CentreForbidden()


def auth_required(*roles: str) -> Callable:
    """Decorate a view: the caller must hold one of `roles`; documents the bearer scheme."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require_principal(*roles)
            return view(*args, **kwargs)

        return document(wrapper, security=[{"bearerAuth": []}])

    return decorator


def document(view: Callable, **doc: Any) -> Callable:
    """Add OpenAPI details to a view in place, as flask-smorest's `Blueprint.doc` would (without another
    wrapper); `parameters` lists are merged by (in, name) rather than replaced."""
    apidoc = deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.get("manual_doc", {})
    merged_parameters = list(manual.get("parameters", []))
    seen = {(p.get("in"), p.get("name")) for p in merged_parameters}
    for parameter in doc.pop("parameters", []):
        if (parameter.get("in"), parameter.get("name")) not in seen:
            merged_parameters.append(parameter)
    manual = deepupdate(manual, doc)
    if merged_parameters:
        manual["parameters"] = merged_parameters
    apidoc["manual_doc"] = manual
    view._apidoc = apidoc
    return view
