"""Flask-Limiter limits read from configuration: tight per identity (account, device, phone, national id),
loose per address.

Carrier-grade NAT puts thousands of citizens behind one public address, so a per-address limit only
catches floods far beyond any crowd (`RATELIMIT_*_PER_ADDRESS`). Abuse is stopped per identity; a request
that carries no such identity (no device id, anonymous) is not counted under it, rather than being
counted by address under an identity's tight limit. The sign-in throttle and lockout per national id are
in the database (app/accounts/services.py `login`), not here.

With Redis down, Flask-Limiter counts in each worker's memory: every limit here then allows up to
(number of worker processes) × the limit; the database's sign-in counters stay exact.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, request

from app.extensions import client_ip, limiter


def _config_limit(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def _json_field(field: str) -> str | None:
    body = request.get_json(silent=True)
    if isinstance(body, dict) and isinstance(body.get(field), str):
        return body[field][:64]
    return None


def account_identity() -> str | None:
    """The signed-in account, or None for anonymous calls."""
    from app.security import current_principal

    try:
        principal = current_principal()
    except Exception:  # an invalid token is refused by the view; it is no identity here
        principal = None
    return f"acct:{principal.role}:{principal.id}" if principal else None


def device_identity() -> str | None:
    """The device id the app sends in `X-Device-Id`, if any."""
    device = request.headers.get("X-Device-Id", "").strip()[:128]
    return f"dev:{device}" if device else None


def national_id_identity() -> str | None:
    """The national id in the JSON body, if any."""
    nid = _json_field("national_id")
    return f"nid:{nid}" if nid else None


def phone_identity() -> str | None:
    """The phone number in the JSON body, else the national id."""
    phone = _json_field("phone")
    return f"phone:{phone}" if phone else national_id_identity()


def limit_by(identity: Callable[[], str | None], limit_name: str, scope: str) -> Callable:
    """A limit counted per `identity`; requests without one are not counted under it."""
    return limiter.limit(
        _config_limit(limit_name),
        key_func=lambda: identity() or "-",
        scope=scope,
        exempt_when=lambda: identity() is None,
    )


def limit_by_address(limit_name: str, scope: str) -> Callable:
    """A flood limit per address (far above a crowd's rate)."""
    return limiter.limit(_config_limit(limit_name), key_func=client_ip, scope=scope)


def _all(*decorators: Callable) -> Callable:
    def apply(view: Callable) -> Callable:
        for decorator in reversed(decorators):
            view = decorator(view)
        return view

    return apply


def limit_logins() -> Callable:
    """Sign-in attempts: per device, and per address for floods (the national id is throttled in the
    database, with growing delays, where no one else's attempts can lock its owner out)."""
    return _all(
        limit_by_address("RATELIMIT_LOGIN_PER_ADDRESS", "login-ip"),
        limit_by(device_identity, "RATELIMIT_LOGIN", "login-dev"),
    )


def limit_codes() -> Callable:
    """One-time codes (register, resend, verify, sign-in codes): per phone, per national id, per device,
    and per address for floods."""
    return _all(
        limit_by_address("RATELIMIT_OTP_PER_ADDRESS", "otp-ip"),
        limit_by(phone_identity, "RATELIMIT_OTP", "otp-phone"),
        limit_by(national_id_identity, "RATELIMIT_OTP", "otp-nid"),
        limit_by(device_identity, "RATELIMIT_OTP", "otp-dev"),
    )


def limit_search() -> Callable:
    """Availability searches: per account, and per address for floods."""
    return _all(
        limit_by(account_identity, "RATELIMIT_SEARCH", "search-acct"),
        limit_by_address("RATELIMIT_SEARCH_PER_ADDRESS", "search-ip"),
    )


def limit_holds() -> Callable:
    """Holds and confirmations: per account, per device, and per address for floods."""
    return _all(
        limit_by(account_identity, "RATELIMIT_HOLDS", "holds-acct"),
        limit_by(device_identity, "RATELIMIT_HOLDS", "holds-dev"),
        limit_by_address("RATELIMIT_HOLDS_PER_ADDRESS", "holds-ip"),
    )


def limit_public_reads() -> Callable:
    """Anonymous reads of one thing by its unguessable id (a ticket's public page): per address."""
    return limit_by_address("RATELIMIT_PUBLIC_READS_PER_ADDRESS", "public-ip")
