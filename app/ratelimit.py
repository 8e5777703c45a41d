"""Flask-Limiter limits keyed by IP, account, device, phone and national id, read from configuration."""

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


def account_key() -> str:
    """The signed-in account (falls back to IP for anonymous calls)."""
    from app.security import current_principal

    try:
        principal = current_principal()
    except Exception:  # an invalid token is refused by the view; count it by IP here
        principal = None
    return f"acct:{principal.role}:{principal.id}" if principal else f"ip:{client_ip()}"


def device_key() -> str:
    """The device id the app sends in `X-Device-Id` (IP when absent)."""
    device = request.headers.get("X-Device-Id", "")[:128]
    return f"dev:{device}" if device else f"ip:{client_ip()}"


def national_id_key() -> str:
    """The national id in the JSON body (IP when absent)."""
    nid = _json_field("national_id")
    return f"nid:{nid}" if nid else f"ip:{client_ip()}"


def phone_key() -> str:
    """The phone number in the JSON body, else the national id."""
    phone = _json_field("phone")
    return f"phone:{phone}" if phone else national_id_key()


def limit_logins() -> Callable:
    """Sign-in attempts: per IP and per national id."""
    by_ip = limiter.limit(_config_limit("RATELIMIT_LOGIN"), key_func=client_ip, scope="login-ip")
    by_nid = limiter.limit(_config_limit("RATELIMIT_LOGIN"), key_func=national_id_key, scope="login-nid")
    return lambda view: by_ip(by_nid(view))


def limit_codes() -> Callable:
    """One-time codes (register, resend, verify): per IP, per phone and per national id."""
    by_ip = limiter.limit(_config_limit("RATELIMIT_OTP"), key_func=client_ip, scope="otp-ip")
    by_phone = limiter.limit(_config_limit("RATELIMIT_OTP"), key_func=phone_key, scope="otp-phone")
    by_nid = limiter.limit(_config_limit("RATELIMIT_OTP"), key_func=national_id_key, scope="otp-nid")
    return lambda view: by_ip(by_phone(by_nid(view)))


def limit_search() -> Callable:
    """Availability searches: per account and per IP."""
    by_acct = limiter.limit(_config_limit("RATELIMIT_SEARCH"), key_func=account_key, scope="search-acct")
    by_ip = limiter.limit(_config_limit("RATELIMIT_SEARCH"), key_func=client_ip, scope="search-ip")
    return lambda view: by_acct(by_ip(view))


def limit_holds() -> Callable:
    """Holds and confirmations: per account, per device and per IP."""
    by_acct = limiter.limit(_config_limit("RATELIMIT_HOLDS"), key_func=account_key, scope="holds-acct")
    by_dev = limiter.limit(_config_limit("RATELIMIT_HOLDS"), key_func=device_key, scope="holds-dev")
    by_ip = limiter.limit(_config_limit("RATELIMIT_HOLDS"), key_func=client_ip, scope="holds-ip")
    return lambda view: by_acct(by_dev(by_ip(view)))
