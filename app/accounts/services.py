"""Account rules: registration, phone codes, sign-in with lockout, token rotation, kiosks."""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import math
import secrets
import uuid
from dataclasses import dataclass

import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.errors import (
    AccountExists,
    AccountLocked,
    CodeExpired,
    CodeInvalid,
    IdentityMismatch,
    InvalidCredentials,
    InvalidPhone,
    PhoneNotVerified,
    RefreshRejected,
    SignInThrottled,
    WeakPassword,
)
from app.accounts.models import Account, DisplayScreen, KioskDevice, LoginLockout, PhoneCode, RefreshToken
from app.accounts.revocation import mark_revoked
from app.accounts.sms import get_sms_sender
from app.errors import NotFound
from app.extensions import db
from app.registry.services import RegistryRecord, list_dependents, lookup_person
from app.tokens import (
    DISPLAY_TOKEN_PREFIX,
    KIOSK_TOKEN_PREFIX,
    hash_token,
    issue_access_token,
    new_opaque_token,
)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def password_hasher() -> PasswordHasher:
    """argon2id with the configured cost (the library default meets OWASP's minimum)."""
    ph = current_app.extensions.get("password_hasher")
    if ph is None:
        cfg = current_app.config
        ph = PasswordHasher(
            time_cost=cfg["ARGON2_TIME_COST"],
            memory_cost=cfg["ARGON2_MEMORY_COST"],
            parallelism=cfg["ARGON2_PARALLELISM"],
        )
        current_app.extensions["password_hasher"] = ph
    return ph


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return password_hasher().hash(password)


def check_password_strength(password: str) -> None:
    """At least 10 characters, with a letter and a digit."""
    if len(password) < 10 or not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        raise WeakPassword()


def normalise_phone(raw: str, *, residence_country: str) -> str:
    """E.164 form of a mobile number; local numbers are read in the country of residence."""
    try:
        number = phonenumbers.parse(raw, residence_country.upper() or "JO")
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(details={"phone": raw}) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(details={"phone": raw})
    kind = phonenumbers.number_type(number)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidPhone(details={"phone": raw})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _code_hash(account_id: int, code: str) -> str:
    pepper = current_app.config["OTP_PEPPER"].encode()
    return hmac.new(pepper, f"{account_id}:{code}".encode(), "sha256").hexdigest()


def send_phone_code(*, account: Account) -> None:
    """Create a fresh one-time code (older ones stop working) and text it to the account's phone."""
    now = clock.now()
    db.session.execute(
        update(PhoneCode)
        .where(PhoneCode.account_id == account.id, PhoneCode.consumed_at.is_(None))
        .values(consumed_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    db.session.add(
        PhoneCode(
            account_id=account.id,
            code_hash=_code_hash(account.id, code),
            expires_at=now + dt.timedelta(seconds=current_app.config["OTP_TTL_SECONDS"]),
        )
    )
    db.session.commit()
    with force_locale(account.language):
        text = _("Your Sanad verification code is %(code)s. Do not share it with anyone.", code=code)
    get_sms_sender().send(account.phone, text)


def register_citizen(
    *,
    national_id: str,
    date_of_birth: dt.date,
    full_name: str,
    phone: str,
    password: str,
    language: str,
    residence_country: str,
) -> Account:
    """Check the person against the registry, create (or refresh an unverified) account, text a code."""
    person = lookup_person(national_id)
    if person is None or person.date_of_birth != date_of_birth:
        raise IdentityMismatch()
    check_password_strength(password)
    country = (residence_country or person.residence_country).upper()
    e164 = normalise_phone(phone, residence_country=country)
    account = db.session.scalar(select(Account).where(Account.national_id == national_id))
    if account is not None and (account.is_verified or account.role != "citizen"):
        raise AccountExists()
    if account is None:
        account = Account(national_id=national_id, role="citizen")
        db.session.add(account)
    # An unverified account is overwritten: whoever proves the phone first owns it.
    account.full_name = full_name.strip()
    account.date_of_birth = date_of_birth
    account.phone = e164
    account.password_hash = hash_password(password)
    account.language = language
    account.residence_country = country
    account.failed_logins = 0
    db.session.flush()
    send_phone_code(account=account)
    return account


def resend_phone_code(*, national_id: str) -> None:
    """Send a new code to an unverified account; silent for unknown or verified ids (no enumeration)."""
    account = db.session.scalar(select(Account).where(Account.national_id == national_id))
    if account is None or account.is_verified:
        return
    send_phone_code(account=account)


def verify_phone(*, national_id: str, code: str) -> TokenPair:
    """Check the latest code (limited attempts, expiry) and sign the citizen in."""
    now = clock.now()
    account = db.session.scalar(select(Account).where(Account.national_id == national_id))
    if account is None:
        raise CodeInvalid()
    _use_code(account, code, now)
    account.phone_verified_at = account.phone_verified_at or now
    return _start_session(account)


def _use_code(account: Account, code: str, now: dt.datetime) -> None:
    """Consume the account's latest one-time code, or refuse (limited attempts, expiry)."""
    pending = db.session.scalar(
        select(PhoneCode)
        .where(PhoneCode.account_id == account.id, PhoneCode.consumed_at.is_(None))
        .order_by(PhoneCode.id.desc())
        .limit(1)
    )
    if pending is None:
        raise CodeInvalid()
    if pending.expires_at <= now:
        raise CodeExpired()
    # Count the attempt atomically before comparing, so parallel guesses cannot exceed the limit.
    counted = db.session.execute(
        update(PhoneCode)
        .where(PhoneCode.id == pending.id, PhoneCode.attempts < current_app.config["OTP_MAX_ATTEMPTS"])
        .values(attempts=PhoneCode.attempts + 1)
    ).rowcount
    if counted != 1:
        db.session.commit()
        raise CodeInvalid()
    if not hmac.compare_digest(pending.code_hash, _code_hash(account.id, code)):
        db.session.commit()
        raise CodeInvalid()
    consumed = db.session.execute(
        update(PhoneCode)
        .where(PhoneCode.id == pending.id, PhoneCode.consumed_at.is_(None))
        .values(consumed_at=now)
    ).rowcount
    if consumed != 1:
        db.session.rollback()
        raise CodeInvalid()


def _start_session(account: Account, family_id: str | None = None) -> TokenPair:
    refresh = new_opaque_token("rt_")
    family_id = family_id or str(uuid.uuid4())
    db.session.add(
        RefreshToken(
            account_id=account.id,
            family_id=family_id,
            token_hash=hash_token(refresh),
            expires_at=clock.now() + dt.timedelta(days=current_app.config["REFRESH_TOKEN_DAYS"]),
        )
    )
    db.session.commit()
    access, lifetime = issue_access_token(
        account_id=account.id,
        role=account.role,
        centre_id=account.centre_id,
        language=account.language,
        phone=account.phone,
        session_id=family_id,
    )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=lifetime)


_DUMMY_HASH: str | None = None


def _spend_equal_time(password: str) -> None:
    """Hash once for unknown ids so response time does not reveal which national ids have accounts."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not-a-real-password-0")
    with contextlib.suppress(VerificationError):
        password_hasher().verify(_DUMMY_HASH, password)


def login(*, national_id: str, password: str, address: str = "unknown", code: str | None = None) -> TokenPair:
    """Password sign-in that nobody else can lock the owner out of.

    Every attempt is counted before the password is checked (so parallel guesses cannot pass the limits):
    for the national id from any address, with growing delays (429 `rate_limited`), and for the pair
    (national id, this address), locked after LOGIN_MAX_FAILURES (429 `account_locked`). The owner gets
    past both with a one-time code texted to the phone on file (`POST /auth/login-code`). Both counters
    are in the database: exact whatever the state of Redis.
    """
    now = clock.now()
    account = db.session.scalar(select(Account).where(Account.national_id == national_id))
    if account is None:
        _spend_equal_time(password)
        raise InvalidCredentials()
    if code is not None:
        _use_code(account, code, now)  # the owner's phone: no throttle, no lock
        db.session.commit()  # spent even if the password is wrong: one code, one try
    else:
        _count_attempt(account, address[:64], now)
    try:
        password_hasher().verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise InvalidCredentials() from None
    if not account.is_verified:
        raise PhoneNotVerified()
    if password_hasher().check_needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    account.failed_logins = 0
    account.locked_until = None
    db.session.execute(
        delete(LoginLockout).where(
            LoginLockout.account_id == account.id, LoginLockout.address == address[:64]
        )
    )
    return _start_session(account)


def sign_in_delay(failures: int) -> dt.timedelta:
    """How long the next attempt for a national id waits after `failures` attempts without a success."""
    cfg = current_app.config
    free = cfg["LOGIN_THROTTLE_FREE_ATTEMPTS"]
    if failures < free:
        return dt.timedelta(0)
    seconds = cfg["LOGIN_THROTTLE_BASE_SECONDS"] * 2 ** min(failures - free, 20)
    return dt.timedelta(seconds=min(seconds, cfg["LOGIN_THROTTLE_MAX_SECONDS"]))


def _retry_after(until: dt.datetime, now: dt.datetime) -> str:
    return str(max(1, math.ceil((until - now).total_seconds())))


def _count_attempt(account: Account, address: str, now: dt.datetime) -> None:
    """Count one attempt for the pair and the national id (committed), or refuse it."""
    cfg = current_app.config
    pair = _lockout_row(account.id, address)
    if pair.locked_until is not None and pair.locked_until > now:
        raise AccountLocked(
            details={"until": pair.locked_until.isoformat(), "scope": "address", "unlock": "login_code"},
            headers={"Retry-After": _retry_after(pair.locked_until, now)},
        )
    if account.locked_until is not None and account.locked_until > now:
        raise SignInThrottled(
            details={
                "until": account.locked_until.isoformat(),
                "scope": "national_id",
                "unlock": "login_code",
            },
            headers={"Retry-After": _retry_after(account.locked_until, now)},
        )
    served = pair.locked_until is not None  # a lock that ran out starts the pair afresh
    failures = (0 if served else pair.failures) + 1
    locks = failures >= cfg["LOGIN_MAX_FAILURES"]
    pair_counted = db.session.execute(
        update(LoginLockout)
        .where(LoginLockout.id == pair.id, LoginLockout.attempts == pair.attempts)
        .values(
            failures=failures,
            attempts=pair.attempts + 1,
            locked_until=now + dt.timedelta(minutes=cfg["LOGIN_LOCKOUT_MINUTES"]) if locks else None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    throttle = sign_in_delay(account.failed_logins + 1)
    same_state = (
        Account.locked_until.is_(None)
        if account.locked_until is None
        else Account.locked_until == account.locked_until
    )
    account_counted = db.session.execute(
        update(Account)
        .where(Account.id == account.id, Account.failed_logins == account.failed_logins, same_state)
        .values(failed_logins=account.failed_logins + 1, locked_until=now + throttle if throttle else None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if pair_counted != 1 or account_counted != 1:  # another attempt for this id counted first
        db.session.rollback()
        raise SignInThrottled(headers={"Retry-After": "1"}, details={"scope": "national_id"})
    db.session.commit()
    db.session.refresh(account)


def _lockout_row(account_id: int, address: str) -> LoginLockout:
    row = db.session.scalar(
        select(LoginLockout).where(LoginLockout.account_id == account_id, LoginLockout.address == address)
    )
    if row is not None:
        return row
    db.session.add(LoginLockout(account_id=account_id, address=address, failures=0, attempts=0))
    try:
        db.session.commit()
    except IntegrityError:  # a parallel attempt created it
        db.session.rollback()
    return db.session.scalars(
        select(LoginLockout)
        .where(LoginLockout.account_id == account_id, LoginLockout.address == address)
        .execution_options(populate_existing=True)
    ).one()


def send_login_code(*, national_id: str) -> None:
    """Text a one-time sign-in code to the phone on file; silent for unknown or unverified ids."""
    account = db.session.scalar(select(Account).where(Account.national_id == national_id))
    if account is None or not account.is_verified:
        return
    send_phone_code(account=account)


def prune_login_lockouts() -> int:
    """Forget pairs untouched for a day (their locks ran out long ago); returns how many."""
    cutoff = clock.now() - dt.timedelta(days=1)
    deleted = db.session.execute(delete(LoginLockout).where(LoginLockout.updated_at < cutoff)).rowcount
    db.session.commit()
    return deleted or 0


def refresh_session(*, refresh_token: str) -> TokenPair:
    """Rotate a refresh token; presenting an already-rotated one revokes its whole family."""
    now = clock.now()
    row = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token)))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise RefreshRejected()
    rotated = db.session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None), RefreshToken.revoked_at.is_(None)
        )
        .values(rotated_at=now)
    ).rowcount
    if rotated != 1:
        # Reuse of a rotated token means it leaked: end every session descended from it.
        db.session.rollback()
        revoke_family(family_id=row.family_id)
        raise RefreshRejected()
    account = db.session.get(Account, row.account_id)
    if account is None:
        raise RefreshRejected()
    return _start_session(account, family_id=row.family_id)


def revoke_family(*, family_id: str) -> None:
    """Revoke every refresh token of a family, and so the access tokens of that session."""
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    db.session.commit()
    mark_revoked([family_id])


def logout(*, refresh_token: str) -> None:
    """End the session the refresh token belongs to (unknown tokens are ignored)."""
    row = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token)))
    if row is not None:
        revoke_family(family_id=row.family_id)


def get_account(account_id: int) -> Account:
    """The account, or 404."""
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound()
    return account


def get_dependents(*, account_id: int, on: dt.date | None = None) -> list[RegistryRecord]:
    """The signed-in citizen's minors in the registry, under 18 on `on` (the visit's date; default today)."""
    account = get_account(account_id)
    return list_dependents(guardian_national_id=account.national_id, on=on or clock.now().date())


def update_profile(*, account_id: int, language: str | None = None) -> Account:
    """Change what the citizen may change about themselves."""
    account = get_account(account_id)
    if language is not None:
        account.language = language
    db.session.commit()
    return account


def create_kiosk(*, centre_id: str, name: str) -> tuple[KioskDevice, str]:
    """Register a ticket machine for a centre; returns the device and its bearer token (shown once)."""
    token = new_opaque_token(KIOSK_TOKEN_PREFIX)
    kiosk = KioskDevice(centre_id=centre_id, name=name, token_hash=hash_token(token))
    db.session.add(kiosk)
    db.session.commit()
    return kiosk, token


def revoke_kiosk(*, kiosk_id: int) -> KioskDevice:
    """Stop a kiosk token from working."""
    kiosk = db.session.get(KioskDevice, kiosk_id)
    if kiosk is None:
        raise NotFound()
    kiosk.revoked_at = kiosk.revoked_at or clock.now()
    db.session.commit()
    return kiosk


def create_display(*, centre_id: str, name: str) -> tuple[DisplayScreen, str]:
    """Register a hall display for a centre; returns it and its token (shown once)."""
    token = new_opaque_token(DISPLAY_TOKEN_PREFIX)
    display = DisplayScreen(centre_id=centre_id, name=name, token_hash=hash_token(token))
    db.session.add(display)
    db.session.commit()
    return display, token


def find_display_by_token(token: str) -> DisplayScreen | None:
    """The active display a token belongs to."""
    display = db.session.scalar(select(DisplayScreen).where(DisplayScreen.token_hash == hash_token(token)))
    if display is None or display.revoked_at is not None:
        return None
    return display
