"""Booking rules: slots, availability, hold → confirm → cancel → reschedule, anti-abuse, urgent passes.

Concurrency lives in the database:
- a seat is taken by `UPDATE slots SET booked = booked + 1 WHERE id = :id AND open AND booked < capacity`
  checked by rowcount, in the same transaction as the booking INSERT;
- a seat is freed only by flipping `bookings.holds_seat` true → false with a conditional UPDATE, and
  `booked` is decremented by exactly the number of rows that UPDATE matched (so twice never happens);
- partial unique indexes make "one active booking per service group" and "one hold" hold under any race;
- PostgreSQL row locks are always taken in the order account → slots (ascending id) → bookings, so
  concurrent holds, reschedules, cancels and sweeps cannot deadlock; SQLite serialises every write
  transaction (BEGIN IMMEDIATE) and ignores FOR UPDATE.

Expired holds and cancelled seats whose release delay has passed are released lazily when a hold finds
their slot full (and counted as free wherever availability is read), so they work with the scheduler
stopped; the `expire_holds` job sweeps the rest. A slot found full closes the sold-out gate
(booking/seatgate.py) for a moment: holds on it are refused from Redis, never granted by it.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Centre, Closure, Offering, Service
from app.database import commit_keeping_state, is_postgres
from app.errors import AppError, Conflict, NotFound
from app.extensions import db
from booking import errors, seatgate
from booking.models import (
    AbuseEvent,
    Booking,
    BookingSuspension,
    DeviceBinding,
    Slot,
    UrgentReserveUsage,
)
from booking.slotgen import generate_slot_times

log = logging.getLogger(__name__)

# Unambiguous for reading aloud and typing: no 0/O, 1/I/L.
REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
REFERENCE_LENGTH = 6
URGENT_REQUEST_PATH = "/api/v1/urgent-requests"


def _cfg(name: str) -> Any:
    return current_app.config[name]


def _postgres() -> bool:
    return is_postgres(db.session.get_bind())


def _dialect():
    return postgresql if _postgres() else sqlite


def local_iso(instant: dt.datetime | None, timezone: str) -> str | None:
    """An instant as ISO 8601 with the centre's local offset."""
    if instant is None:
        return None
    return instant.astimezone(zoneinfo.ZoneInfo(timezone)).isoformat()


# --------------------------------------------------------------------------------------------- locks


def _lock_account(account_id: int) -> None:
    """Serialise one citizen's quota-changing commands (PostgreSQL row lock; SQLite is serial already)."""
    if _postgres():
        db.session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


def _lock_slots(slot_ids: Iterable[int]) -> None:
    """Lock slot rows in ascending id order (the one order every transaction uses)."""
    ids = sorted(set(slot_ids))
    if ids and _postgres():
        db.session.execute(select(Slot.id).where(Slot.id.in_(ids)).order_by(Slot.id).with_for_update())


def _lock_device(device_id: str) -> None:
    """Serialise bindings of one device id (transaction-scoped advisory lock on PostgreSQL)."""
    if _postgres():
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:d, 7301))"), {"d": device_id})


# ------------------------------------------------------------------------------------ seat release


def _due_release(now: dt.datetime):
    """Bookings whose seat should be free by now: an expired hold, or a cancel whose delay has passed."""
    return and_(
        Booking.holds_seat.is_(True),
        or_(
            and_(Booking.status == "held", Booking.hold_expires_at <= now),
            and_(Booking.status == "cancelled", Booking.seat_release_at <= now),
        ),
    )


def _release_due_seats(slot_id: int, now: dt.datetime) -> int:
    """Free the due seats of one slot (caller holds the slot lock); returns how many were freed."""
    result = db.session.execute(
        update(Booking)
        .where(Booking.slot_id == slot_id, _due_release(now))
        .values(holds_seat=False, status=case((Booking.status == "held", "expired"), else_=Booking.status))
        .execution_options(synchronize_session=False)
    )
    freed = result.rowcount or 0
    if freed:
        db.session.execute(
            update(Slot)
            .where(Slot.id == slot_id)
            .values(booked=Slot.booked - freed)
            .execution_options(synchronize_session=False)
        )
        from booking.waitlist import offer_freed_seats

        offer_freed_seats(slot_id=slot_id, now=now)  # those who wait come before open sale (SPEC §9)
    return freed


def release_slot_seats(*, slot_id: int) -> int:
    """Free a slot's due seats in a short transaction of its own; returns how many."""
    try:
        _lock_slots([slot_id])
        freed = _release_due_seats(slot_id, clock.now())
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if freed:
        seatgate.reopen(slot_id)
    return freed


def release_due_seats() -> int:
    """Free every due seat (expired holds, cancels past their delay), one slot per transaction."""
    now = clock.now()
    slot_ids = db.session.scalars(
        select(Booking.slot_id).where(Booking.slot_id.is_not(None), _due_release(now)).distinct()
    ).all()
    db.session.rollback()
    return sum(release_slot_seats(slot_id=slot_id) for slot_id in slot_ids)


# ----------------------------------------------------------------------------------- abuse records


class AbuseRefusal(AppError):
    """Marker mix-in: refusals for abuse are recorded as abuse events."""


def first_in_window(key: str, *, seconds: int) -> bool:
    """True for the first call with `key` in a window of `seconds` (Redis SET NX); True if Redis is down."""
    import redis

    from app.redis_client import get_redis

    try:
        return bool(get_redis().set(key, "1", nx=True, ex=seconds))
    except redis.RedisError:
        return True


def record_abuse_event(
    *,
    rule: str,
    reason: str,
    account_id: int | None = None,
    national_id: str | None = None,
    device_id: str | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> AbuseEvent:
    """Write an abuse event in its own short transaction (commits)."""
    # The refusal's own transaction has been rolled back (it may have held locks and half-done writes);
    # writing the event inside it would lose the event with the rollback, so it gets a transaction of its
    # own, committed at once and holding no locks of the refused command.
    if national_id is None and account_id is not None:
        national_id = db.session.scalar(select(Account.national_id).where(Account.id == account_id))
    event = AbuseEvent(
        account_id=account_id,
        national_id=national_id,
        device_id=(device_id or None) and device_id[:128],
        ip=ip,
        rule=rule,
        reason=reason[:200],
        details=_jsonable(details or {}),
        created_at=clock.now(),
    )
    db.session.add(event)
    db.session.commit()
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


# Which error codes are abuse refusals (recorded), and the rule name each is filed under.
ABUSE_RULES = {
    "active_booking_exists": "quota_per_group",
    "quota_exceeded": "quota_active",
    "hold_limit": "quota_holds",
    "booking_suspended": "suspension",
    "not_eligible": "eligibility",
    "device_limit": "device_binding",
    "app_check_failed": "app_check",
    "rate_limited": "rate_limit",
}


def _record_refusal(
    error: AppError, *, account_id: int | None, device_id: str | None, ip: str | None, **extra: Any
) -> None:
    rule = ABUSE_RULES.get(error.code)
    if rule is None:
        return
    details = {**error.details, **extra}
    reason = str(error.details.get("reason") or error.code)
    try:
        record_abuse_event(
            rule=rule, reason=reason, account_id=account_id, device_id=device_id, ip=ip, details=details
        )
    except Exception:  # the refusal stands even if its record cannot be written
        db.session.rollback()
        log.exception("could not record abuse event %s", rule)


# -------------------------------------------------------------------------------------- notifications


def _notify(booking: Booking, kind: str, *, dedupe: str, **extra: Any) -> None:
    """Queue a notification to the booking's citizen in the current transaction."""
    from notifications.services import notify_citizen

    params: dict[str, Any] = {
        "reference": booking.reference,
        "booking_id": booking.id,
        "centre_id": booking.centre_id,
        "service_code": booking.service_code,
        **extra,
    }
    notify_citizen(account_id=booking.account_id, kind=kind, params=params, dedupe_key=dedupe)


# ------------------------------------------------------------------------------------------ lookups


def _new_reference() -> str:
    for _ in range(8):
        reference = "BK-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
        if db.session.scalar(select(Booking.id).where(Booking.reference == reference)) is None:
            return reference
    raise Conflict()  # practically unreachable: 31^6 ≈ 887 million references


def normalise_reference(reference: str) -> str:
    """References are typed by people: ignore case and surrounding spaces."""
    return (reference or "").strip().upper()


def get_booking(*, account_id: int, reference: str) -> Booking:
    """The citizen's own booking by reference (another citizen's answers 404)."""
    booking = db.session.scalar(
        select(Booking)
        .options(joinedload(Booking.slot), joinedload(Booking.centre))
        .where(Booking.reference == normalise_reference(reference), Booking.account_id == account_id)
        .execution_options(populate_existing=True)
    )
    if booking is None:
        raise errors.BookingNotFound()
    return booking


def list_bookings(*, account_id: int, status: str | None = None):
    """The citizen's bookings, newest first, as a query to paginate."""
    query = (
        select(Booking)
        .options(joinedload(Booking.slot), joinedload(Booking.centre))
        .where(Booking.account_id == account_id)
        .order_by(Booking.created_at.desc(), Booking.id.desc())
    )
    if status:
        query = query.where(Booking.status == status)
    return query


def _get_account(account_id: int, *, lock: bool = False) -> Account:
    """The citizen; with `lock`, loaded under the account row lock (one statement, see `_lock_account`)."""
    account = db.session.get(Account, account_id, with_for_update=lock or None)
    if account is None or account.role != "citizen":
        raise NotFound()
    if not account.is_verified:
        raise errors.AccountNotVerified()
    return account


def _bookable_slot(slot_id: int) -> tuple[Slot, Offering, Service, Centre]:
    row = db.session.execute(
        select(Slot, Offering, Service, Centre)
        .join(Offering, Offering.id == Slot.offering_id)
        .join(Service, Service.code == Offering.service_code)
        .join(Centre, Centre.id == Offering.centre_id)
        .where(
            Slot.id == slot_id,
            Slot.open.is_(True),
            Offering.active.is_(True),
            Service.active.is_(True),
            Centre.active.is_(True),
        )
    ).first()
    if row is None:
        raise errors.SlotNotFound()
    return row[0], row[1], row[2], row[3]


def horizon_days(*, expatriate: bool, offering: Offering | None = None) -> int:
    """How far ahead a caller may book: residents 30 days, expatriates 90; an offering may shorten it."""
    days = _cfg("EXPATRIATE_HORIZON_DAYS") if expatriate else _cfg("RESIDENT_HORIZON_DAYS")
    if offering is not None and offering.horizon_days:
        days = min(days, offering.horizon_days)
    return int(days)


def _check_time(slot: Slot, offering: Offering, account: Account, now: dt.datetime, tz: str) -> None:
    earliest = now + dt.timedelta(minutes=_cfg("BOOKING_CUTOFF_MINUTES"))
    latest = now + dt.timedelta(days=horizon_days(expatriate=account.is_expatriate, offering=offering))
    if slot.start <= earliest:
        raise errors.OutsideHorizon(details={"reason": "cutoff", "earliest": local_iso(earliest, tz)})
    if slot.start > latest:
        raise errors.OutsideHorizon(details={"reason": "horizon", "latest": local_iso(latest, tz)})


# ------------------------------------------------------------------------------------- anti-abuse


class _Refusals:
    """The anti-abuse refusals as AbuseRefusal subclasses, so `hold_slot` records them."""

    class BookingSuspended(errors.BookingSuspended, AbuseRefusal):
        pass

    class NotEligible(errors.NotEligible, AbuseRefusal):
        pass

    class DeviceLimit(errors.DeviceLimit, AbuseRefusal):
        pass

    class QuotaExceeded(errors.QuotaExceeded, AbuseRefusal):
        pass

    class ActiveBookingExists(errors.ActiveBookingExists, AbuseRefusal):
        pass

    class HoldLimit(errors.HoldLimit, AbuseRefusal):
        pass


def active_suspensions(*, account_id: int, now: dt.datetime | None = None) -> list[BookingSuspension]:
    """Suspensions in force for a citizen."""
    now = now or clock.now()
    return list(
        db.session.scalars(
            select(BookingSuspension)
            .where(
                BookingSuspension.account_id == account_id,
                BookingSuspension.lifted_at.is_(None),
                BookingSuspension.until > now,
            )
            .order_by(BookingSuspension.until.desc())
        )
    )


def _check_suspensions(account: Account, service: Service, now: dt.datetime, tz: str) -> None:
    for suspension in active_suspensions(account_id=account.id, now=now):
        if suspension.scope == "all" or (suspension.scope == "high_demand" and service.high_demand):
            raise _Refusals.BookingSuspended(
                details={
                    "reason": suspension.kind,
                    "scope": suspension.scope,
                    "until": local_iso(suspension.until, tz),
                }
            )


def check_eligibility(*, account: Account, service: Service, today: dt.date) -> None:
    """Passport renewal only near or past expiry; a first passport only without a valid one."""
    if service.eligibility == "none":
        return
    from app.registry.services import lookup_person

    record = lookup_person(account.national_id)
    details: dict[str, Any] = {"urgent_request_path": URGENT_REQUEST_PATH, "service": service.code}
    if record is None:
        raise _Refusals.NotEligible(details={**details, "reason": "not_in_registry"})
    if service.eligibility == "passport_renew":
        window = dt.timedelta(days=_cfg("RENEWAL_WINDOW_DAYS"))
        if record.passport_expiry is None:
            raise _Refusals.NotEligible(
                details={**details, "reason": "no_passport", "suggested_service": "passport.issue"}
            )
        if record.passport_expiry > today + window:
            raise _Refusals.NotEligible(
                details={
                    **details,
                    "reason": "passport_not_expiring",
                    "renewal_opens_on": (record.passport_expiry - window).isoformat(),
                }
            )
    elif service.eligibility == "passport_issue" and record.has_valid_passport(today):
        raise _Refusals.NotEligible(
            details={**details, "reason": "valid_passport_held", "suggested_service": "passport.renew"}
        )


def _bind_device(account_id: int, device_id: str | None, now: dt.datetime) -> None:
    """At most DEVICE_ACCOUNT_LIMIT accounts book from one device id within DEVICE_WINDOW_DAYS."""
    if not device_id:
        return
    device_id = device_id[:128]
    _lock_device(device_id)
    since = now - dt.timedelta(days=_cfg("DEVICE_WINDOW_DAYS"))
    mine = db.session.scalar(
        select(DeviceBinding).where(
            DeviceBinding.device_id == device_id, DeviceBinding.account_id == account_id
        )
    )
    if mine is None or mine.last_seen < since:
        others = db.session.scalar(
            select(func.count(func.distinct(DeviceBinding.account_id))).where(
                DeviceBinding.device_id == device_id,
                DeviceBinding.account_id != account_id,
                DeviceBinding.last_seen >= since,
            )
        )
        limit = _cfg("DEVICE_ACCOUNT_LIMIT")
        if others >= limit:
            raise _Refusals.DeviceLimit(
                details={
                    "reason": "too_many_accounts",
                    "limit": limit,
                    "window_days": _cfg("DEVICE_WINDOW_DAYS"),
                }
            )
    if mine is None:
        db.session.add(
            DeviceBinding(device_id=device_id, account_id=account_id, first_seen=now, last_seen=now)
        )
    else:
        mine.last_seen = now
    db.session.flush()


def _check_quotas(account_id: int, group: str, now: dt.datetime) -> list[int]:
    """Counted under the account lock; the partial unique indexes back the per-group and hold limits.

    Returns the slots of the citizen's own expired holds, which the caller releases before holding (they
    never count against a new hold, and "one hold" is a unique index on held rows).
    """
    mine = db.session.execute(
        select(
            Booking.status, Booking.service_group, Booking.reference, Booking.slot_id, Booking.hold_expires_at
        ).where(
            Booking.account_id == account_id,
            Booking.kind == "regular",
            Booking.status.in_(("confirmed", "held")),
        )
    ).all()
    rows = [r for r in mine if r.status == "confirmed" or r.hold_expires_at > now]
    holds = [r for r in rows if r.status == "held"]
    if len(holds) >= _cfg("MAX_HOLDS"):
        raise _Refusals.HoldLimit(details={"reason": "hold_limit", "reference": holds[0].reference})
    same_group = [r for r in rows if r.service_group == group]
    if len(same_group) >= _cfg("MAX_ACTIVE_PER_GROUP"):
        raise _Refusals.ActiveBookingExists(
            details={"reason": "per_group", "service_group": group, "reference": same_group[0].reference}
        )
    if len(rows) >= _cfg("MAX_ACTIVE_BOOKINGS"):
        raise _Refusals.QuotaExceeded(details={"reason": "max_active", "limit": _cfg("MAX_ACTIVE_BOOKINGS")})
    return [r.slot_id for r in mine if r.status == "held" and r.hold_expires_at <= now]


def _integrity_refusal(exc: IntegrityError, group: str) -> AppError:
    message = str(exc.orig)
    if "uq_bookings_one_hold" in message or (
        "bookings.account_id" in message and "service_group" not in message
    ):
        return _Refusals.HoldLimit(details={"reason": "hold_limit"})
    if "uq_bookings_active_per_group" in message or "service_group" in message:
        return _Refusals.ActiveBookingExists(details={"reason": "per_group", "service_group": group})
    return Conflict()


# --------------------------------------------------------------------------------- hold → confirm


def _next_release(slot_id: int):
    """When the slot's first seat falls due for release (an expiring hold, a cancel's delay), if any."""
    due_at = case((Booking.status == "held", Booking.hold_expires_at), else_=Booking.seat_release_at)
    return select(func.min(due_at)).where(
        Booking.slot_id == slot_id,
        Booking.holds_seat.is_(True),
        Booking.status.in_(("held", "cancelled")),
    )


def _take_seat(slot_id: int) -> bool:
    """The conditional seat UPDATE: true when a seat was taken (its row lock is held until commit)."""
    taken = db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.open.is_(True), Slot.booked < Slot.capacity)
        .values(booked=Slot.booked + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    return taken == 1


def _insert_booking(values: dict[str, Any]) -> Booking:
    """INSERT the booking under a fresh reference; a reference already taken is drawn again.

    `ON CONFLICT (reference) DO NOTHING` skips only a reference collision, in the same round trip and
    without breaking the transaction; the partial unique indexes (one hold, one per group) still raise.
    """
    for _ in range(8):
        reference = "BK-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
        stmt = (
            _dialect()
            .insert(Booking)
            .values(reference=reference, **values)
            .on_conflict_do_nothing(index_elements=["reference"])
            .returning(Booking)
        )
        booking = db.session.scalars(stmt).first()
        if booking is not None:
            return booking
    raise Conflict()  # practically unreachable: 31^6 ≈ 887 million references


def hold_slot(
    *, account_id: int, slot_id: int, device_id: str | None = None, ip: str | None = None
) -> Booking:
    """Hold a seat of a slot for HOLD_SECONDS (201 held); anti-abuse refusals are recorded.

    One transaction, in the lock order account → slot. A slot seen full a moment ago is refused by the
    sold-out gate (Redis) before any database work; a full slot with nothing due for release is refused
    by one read, with no lock and no write, and closes the gate.
    """
    gate = seatgate.check(slot_id)
    if gate == seatgate.CLOSED:
        raise errors.SlotFull(details={"slot_id": slot_id})
    group, own_expired = "", []
    try:
        slot, offering, service, centre = _bookable_slot(slot_id)
        group = service.group
        now = clock.now()
        if slot.booked >= slot.capacity:
            next_release = db.session.scalar(_next_release(slot_id))
            if next_release is None or next_release > now:
                db.session.rollback()
                seatgate.close(slot_id, now=now, next_release=next_release)
                raise errors.SlotFull(details={"slot_id": slot_id})
        if gate == seatgate.PROBE:  # seats to be had again: every hold may ask the database
            seatgate.reopen(slot_id)
        account = _get_account(account_id, lock=True)
        _check_time(slot, offering, account, now, centre.timezone)
        _check_suspensions(account, service, now, centre.timezone)
        check_eligibility(account=account, service=service, today=slot.local_date)
        _bind_device(account_id, device_id, now)
        own_expired = _check_quotas(account_id, group, now)
        if own_expired:  # released here so they never block the new hold; slots locked in id order
            _lock_slots([*own_expired, slot_id])
            for expired_slot in sorted(set(own_expired)):
                _release_due_seats(expired_slot, now)
        if not _take_seat(slot_id):
            # Full: free the seats that fell due (expired holds, cancels past their delay) and try once more.
            _lock_slots([slot_id])
            if not (_release_due_seats(slot_id, now) and _take_seat(slot_id)):
                raise errors.SlotFull(details={"slot_id": slot_id})
        booking = _insert_booking(
            {
                "account_id": account_id,
                "slot_id": slot_id,
                "offering_id": offering.id,
                "centre_id": centre.id,
                "service_code": service.code,
                "service_group": service.group,
                "kind": "regular",
                "status": "held",
                "holds_seat": True,
                "hold_expires_at": now + dt.timedelta(seconds=_cfg("HOLD_SECONDS")),
                "device_id": (device_id or None) and device_id[:128],
                "created_at": now,
            }
        )
        # The answer is built from the rows in hand: linked without history (nothing to flush), kept
        # unexpired through the commit, so serialising it needs no reload.
        set_committed_value(booking, "slot", slot)
        set_committed_value(booking, "centre", centre)
        _notify(booking, "booking_held", dedupe=f"booking_held:{booking.id}", start=slot.start)
        commit_keeping_state(db.session)
    except IntegrityError as exc:
        db.session.rollback()
        refusal = _integrity_refusal(exc, group)
        _record_refusal(refusal, account_id=account_id, device_id=device_id, ip=ip, slot_id=slot_id)
        raise refusal from exc
    except AbuseRefusal as refusal:
        db.session.rollback()
        _record_refusal(refusal, account_id=account_id, device_id=device_id, ip=ip, slot_id=slot_id)
        raise
    except Exception:
        db.session.rollback()
        raise
    if own_expired:
        seatgate.reopen(*own_expired)
    return booking


def confirm_booking(*, account_id: int, reference: str) -> Booking:
    """Confirm a live hold (410 hold_expired once it ran out); confirming twice is harmless."""
    booking = get_booking(account_id=account_id, reference=reference)
    if booking.status == "confirmed":
        return booking
    if booking.status == "expired":
        raise errors.HoldExpired()
    if booking.status != "held":
        raise errors.InvalidBookingState(details={"status": booking.status})
    now = clock.now()
    confirmed = db.session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == "held", Booking.hold_expires_at > now)
        .values(status="confirmed", confirmed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if confirmed != 1:
        db.session.rollback()
        booking = get_booking(account_id=account_id, reference=reference)
        if booking.status == "confirmed":
            return booking
        if booking.status == "held" and booking.slot_id is not None:
            release_slot_seats(slot_id=booking.slot_id)
            raise errors.HoldExpired()
        if booking.status == "expired":
            raise errors.HoldExpired()
        raise errors.InvalidBookingState(details={"status": booking.status})
    set_committed_value(booking, "status", "confirmed")
    set_committed_value(booking, "confirmed_at", now)
    _notify(booking, "booking_confirmed", dedupe=f"booking_confirmed:{booking.id}", start=booking.slot.start)
    commit_keeping_state(db.session)  # the row is what the UPDATE above wrote: answered without a reload
    return booking


def cancel_booking(*, account_id: int, reference: str) -> Booking:
    """Cancel a hold or a confirmed booking; its seat returns to sale after CANCEL_RELEASE_DELAY_MINUTES."""
    booking = get_booking(account_id=account_id, reference=reference)
    if booking.status == "cancelled":
        return booking
    now = clock.now()
    if booking.kind == "regular" and booking.slot is not None and booking.slot.start <= now:
        raise errors.InvalidBookingState(details={"status": booking.status, "reason": "already_started"})
    if booking.kind == "urgent" and booking.status != "confirmed":
        raise errors.InvalidBookingState(details={"status": booking.status})
    release_at = now + dt.timedelta(minutes=_cfg("CANCEL_RELEASE_DELAY_MINUTES"))
    suspension = None
    try:
        _lock_account(account_id)
        cancelled = db.session.execute(
            update(Booking)
            .where(
                Booking.id == booking.id,
                or_(
                    Booking.status == "confirmed",
                    and_(Booking.status == "held", Booking.hold_expires_at > now),
                ),
            )
            .values(status="cancelled", cancelled_at=now, seat_release_at=release_at)
            .execution_options(synchronize_session=False)
        ).rowcount
        if cancelled != 1:
            db.session.rollback()
            current = get_booking(account_id=account_id, reference=reference)
            if current.status == "cancelled":
                return current
            if current.status in ("held", "expired"):
                if current.status == "held" and current.slot_id is not None:
                    release_slot_seats(slot_id=current.slot_id)
                raise errors.HoldExpired()
            raise errors.InvalidBookingState(details={"status": current.status})
        if booking.kind == "urgent":
            db.session.execute(
                update(UrgentReserveUsage)
                .where(
                    UrgentReserveUsage.offering_id == booking.offering_id,
                    UrgentReserveUsage.local_date == booking.urgent_date,
                    UrgentReserveUsage.used > 0,
                )
                .values(used=UrgentReserveUsage.used - 1)
            )
        else:
            suspension = _apply_cancel_cooldown(account_id, now)
        start = booking.slot.start if booking.slot is not None else None
        _notify(booking, "booking_cancelled", dedupe=f"booking_cancelled:{booking.id}", start=start)
        if suspension is not None:
            _notify(
                booking,
                "booking_cooldown",
                dedupe=f"booking_cooldown:{suspension.id}",
                until=suspension.until,
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if booking.slot_id is not None and release_at <= now:
        release_slot_seats(slot_id=booking.slot_id)  # free now: to whoever waits for it, else to sale
    seatgate.reopen(booking.slot_id)  # with no release delay the seat is free now: ask the database again
    if suspension is not None:
        _record_refusal_free_event(suspension)
    return get_booking(account_id=account_id, reference=reference)


def _apply_cancel_cooldown(account_id: int, now: dt.datetime) -> BookingSuspension | None:
    """CANCEL_LIMIT cancellations within CANCEL_WINDOW_DAYS cool booking down (once; account lock held)."""
    since = now - dt.timedelta(days=_cfg("CANCEL_WINDOW_DAYS"))
    count = db.session.scalar(
        select(func.count()).where(
            Booking.account_id == account_id,
            Booking.kind == "regular",
            Booking.status == "cancelled",
            Booking.cancelled_at >= since,
        )
    )
    if count < _cfg("CANCEL_LIMIT"):
        return None
    if any(s.kind == "cancel_cooldown" for s in active_suspensions(account_id=account_id, now=now)):
        return None
    return _suspend(
        account_id, kind="cancel_cooldown", scope="all", days=_cfg("CANCEL_COOLDOWN_DAYS"), now=now
    )


def _suspend(account_id: int, *, kind: str, scope: str, days: int, now: dt.datetime) -> BookingSuspension:
    """Add a suspension of `kind` for `days` (the caller holds the account lock)."""
    suspension = BookingSuspension(
        account_id=account_id, kind=kind, scope=scope, until=now + dt.timedelta(days=days), created_at=now
    )
    db.session.add(suspension)
    db.session.flush()
    return suspension


def _record_refusal_free_event(suspension: BookingSuspension) -> None:
    """A sanction is an abuse event too (written after the command's commit)."""
    try:
        record_abuse_event(
            rule="cancel_cooldown" if suspension.kind == "cancel_cooldown" else "no_show",
            reason=f"{suspension.kind}_suspension",
            account_id=suspension.account_id,
            details={"suspension_id": suspension.id, "scope": suspension.scope, "until": suspension.until},
        )
    except Exception:
        db.session.rollback()
        log.exception("could not record suspension event")


def reschedule_booking(*, account_id: int, reference: str, slot_id: int) -> Booking:
    """Move a booking to another slot of the same service: the old seat is freed only if the new is taken."""
    booking = get_booking(account_id=account_id, reference=reference)
    now = clock.now()
    if booking.kind != "regular" or booking.slot is None:
        raise errors.InvalidBookingState(details={"status": booking.status, "reason": "urgent"})
    if booking.status == "held" and booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        raise errors.HoldExpired()
    if booking.status not in ("held", "confirmed"):
        raise errors.InvalidBookingState(details={"status": booking.status})
    if booking.slot.start <= now:
        raise errors.InvalidBookingState(details={"status": booking.status, "reason": "already_started"})
    if booking.slot_id == slot_id:
        raise errors.SameSlot()
    account = _get_account(account_id)
    new_slot, offering, service, centre = _bookable_slot(slot_id)
    if service.code != booking.service_code:
        raise errors.WrongService(details={"service": booking.service_code})
    _check_time(new_slot, offering, account, now, centre.timezone)
    old_slot_id = booking.slot_id
    try:
        _lock_slots([old_slot_id, slot_id])
        _release_due_seats(slot_id, now)
        taken = db.session.execute(
            update(Slot)
            .where(Slot.id == slot_id, Slot.open.is_(True), Slot.booked < Slot.capacity)
            .values(booked=Slot.booked + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            raise errors.SlotFull(details={"slot_id": slot_id})
        moved = db.session.execute(
            update(Booking)
            .where(
                Booking.id == booking.id,
                Booking.slot_id == old_slot_id,
                Booking.holds_seat.is_(True),
                or_(
                    Booking.status == "confirmed",
                    and_(Booking.status == "held", Booking.hold_expires_at > now),
                ),
            )
            .values(slot_id=slot_id, offering_id=offering.id, centre_id=centre.id, rescheduled_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            raise errors.InvalidBookingState(details={"reason": "changed_concurrently"})
        db.session.execute(
            update(Slot)
            .where(Slot.id == old_slot_id)
            .values(booked=Slot.booked - 1)
            .execution_options(synchronize_session=False)
        )
        booking.slot_id, booking.centre_id = slot_id, centre.id
        _notify(
            booking,
            "booking_rescheduled",
            dedupe=f"booking_rescheduled:{booking.id}:{slot_id}:{now.timestamp()}",
            start=new_slot.start,
            centre_id=centre.id,
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    seatgate.reopen(old_slot_id)
    db.session.expire_all()
    return get_booking(account_id=account_id, reference=reference)


def booking_calendar(*, account_id: int, reference: str) -> bytes:
    """The citizen's booking as an iCalendar file in the centre's zone (VTIMEZONE included)."""
    import icalendar

    booking = get_booking(account_id=account_id, reference=reference)
    centre = booking.centre
    service = db.session.get(Service, booking.service_code)
    zone = zoneinfo.ZoneInfo(centre.timezone)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Sanad Booking//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"{booking.reference}@sanad-booking")
    event.add("dtstamp", clock.now())
    service_name = f"{service.name_en} / {service.name_ar}" if service is not None else booking.service_code
    event.add("summary", f"{service_name} ({booking.reference})")
    if booking.slot is not None:
        event.add("dtstart", booking.slot.start.astimezone(zone))
        event.add("dtend", booking.slot.end.astimezone(zone))
    else:
        event.add("dtstart", booking.urgent_date)
        event.add("dtend", booking.urgent_date + dt.timedelta(days=1))
    event.add("location", f"{centre.name_en}, {centre.address_en} / {centre.name_ar}، {centre.address_ar}")
    event.add(
        "description",
        f"Booking reference: {booking.reference}\nرقم الحجز: {booking.reference}\n"
        f"Service: {booking.service_code}\nStatus: {booking.status}",
    )
    event.add("status", "CANCELLED" if booking.status in ("cancelled", "expired") else "CONFIRMED")
    cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()


# ------------------------------------------------------------------------------ slot generation


def regenerate_offering_slots(offering: Offering, *, now: dt.datetime | None = None) -> int:
    """Bring an offering's future slots in line with its schedule (free ones only); returns slots added."""
    now = now or clock.now()
    centre = offering.centre
    tz = zoneinfo.ZoneInfo(centre.timezone)
    today = now.astimezone(tz).date()
    days = max(_cfg("RESIDENT_HORIZON_DAYS"), _cfg("EXPATRIATE_HORIZON_DAYS"))
    if offering.horizon_days:
        days = min(days, offering.horizon_days)
    closures = set(
        db.session.scalars(
            select(Closure.date).where(Closure.centre_id == centre.id, Closure.date >= today)
        ).all()
    )
    wanted_live = offering.active and centre.active and offering.service.active
    desired = (
        generate_slot_times(
            weekly_hours=offering.effective_hours or {},
            closures=closures,
            timezone=centre.timezone,
            slot_minutes=offering.slot_minutes,
            first_day=today,
            last_day=today + dt.timedelta(days=days + 1),
        )
        if wanted_live
        else []
    )
    desired = [s for s in desired if s.start > now]
    by_start = {s.start: s for s in desired}
    seats = offering.bookable_capacity
    existing = db.session.execute(
        select(Slot.id, Slot.start, Slot.end, Slot.open, Slot.capacity, Slot.booked).where(
            Slot.offering_id == offering.id, Slot.start > now
        )
    ).all()
    gone = [row.id for row in existing if row.start not in by_start]
    for chunk in _chunks(gone, 500):
        # Free slots nobody ever pointed at disappear; the rest stay, closed to new bookings.
        db.session.execute(
            delete(Slot)
            .where(
                Slot.id.in_(chunk),
                Slot.booked == 0,
                ~select(Booking.id).where(Booking.slot_id == Slot.id).exists(),
            )
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(Slot)
            .where(Slot.id.in_(chunk))
            .values(open=False)
            .execution_options(synchronize_session=False)
        )
    for row in existing:
        target = by_start.get(row.start)
        if target is None:
            continue
        if not row.open or row.capacity != seats or row.end != target.end:
            db.session.execute(
                update(Slot)
                .where(Slot.id == row.id)
                .values(
                    open=True,
                    end=target.end,
                    capacity=case((Slot.booked > seats, Slot.booked), else_=seats),
                )
                .execution_options(synchronize_session=False)
            )
    have = {row.start for row in existing}
    missing = [
        {
            "offering_id": offering.id,
            "start": s.start,
            "end": s.end,
            "local_date": s.local_date,
            "capacity": seats,
            "booked": 0,
            "open": True,
        }
        for s in desired
        if s.start not in have
    ]
    if not missing:
        return 0
    count = select(func.count()).where(Slot.offering_id == offering.id, Slot.start > now)
    before = db.session.scalar(count)
    for chunk in _chunks(missing, 1000):
        # Insert-if-absent: a second scheduler running the same job at once adds nothing twice.
        stmt = _dialect().insert(Slot).on_conflict_do_nothing(index_elements=["offering_id", "start"])
        db.session.connection().execute(stmt, list(chunk))
    return max(db.session.scalar(count) - before, 0)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def regenerate_slots(*, centre_id: str | None = None, offering_id: int | None = None) -> int:
    """Regenerate the future free slots of one offering, a centre's offerings, or all (commits)."""
    query = select(Offering).options(joinedload(Offering.centre))
    if offering_id is not None:
        query = query.where(Offering.id == offering_id)
    elif centre_id is not None:
        query = query.where(Offering.centre_id == centre_id)
    added = 0
    for offering in db.session.scalars(query).unique().all():
        try:
            added += regenerate_offering_slots(offering)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    return added


# ----------------------------------------------------------------------------- no-shows and sweeps


def mark_no_shows() -> int:
    """Confirmed bookings not checked in by slot end + grace become no-shows; repeat offenders suspended."""
    now = clock.now()
    grace = dt.timedelta(minutes=_cfg("NO_SHOW_GRACE_MINUTES"))
    candidates = db.session.execute(
        select(Booking.id, Booking.account_id)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(Booking.status == "confirmed", Booking.kind == "regular", Slot.end <= now - grace)
        .order_by(Booking.id)
    ).all()
    db.session.rollback()
    effects = 0
    for booking_id, account_id in candidates:
        suspension = None
        try:
            _lock_account(account_id)
            changed = db.session.execute(
                update(Booking)
                .where(Booking.id == booking_id, Booking.status == "confirmed")
                .values(status="no_show", no_show_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed == 1:
                effects += 1
                suspension = _apply_no_show_suspension(account_id, now)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        if suspension is not None:
            effects += 1
            _record_refusal_free_event(suspension)
    return effects


def _apply_no_show_suspension(account_id: int, now: dt.datetime) -> BookingSuspension | None:
    since = now - dt.timedelta(days=_cfg("NO_SHOW_WINDOW_DAYS"))
    count = db.session.scalar(
        select(func.count())
        .select_from(Booking)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(Booking.account_id == account_id, Booking.status == "no_show", Slot.start >= since)
    )
    if count < _cfg("NO_SHOW_LIMIT"):
        return None
    if any(s.kind == "no_show" for s in active_suspensions(account_id=account_id, now=now)):
        return None
    suspension = _suspend(
        account_id, kind="no_show", scope="high_demand", days=_cfg("NO_SHOW_SUSPENSION_DAYS"), now=now
    )
    from notifications.services import notify_citizen

    notify_citizen(
        account_id=account_id,
        kind="booking_suspended",
        params={"until": suspension.until, "scope": "high_demand"},
        dedupe_key=f"booking_suspended:{suspension.id}",
    )
    return suspension


# --------------------------------------------------------------------------------- admin: suspensions


def list_abuse_events(
    *,
    national_id: str | None = None,
    rule: str | None = None,
    device_id: str | None = None,
    ip: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
):
    """Abuse events, newest first, filtered, as a query to paginate."""
    query = select(AbuseEvent).order_by(AbuseEvent.created_at.desc(), AbuseEvent.id.desc())
    if national_id:
        query = query.where(AbuseEvent.national_id == national_id)
    if rule:
        query = query.where(AbuseEvent.rule == rule)
    if device_id:
        query = query.where(AbuseEvent.device_id == device_id)
    if ip:
        query = query.where(AbuseEvent.ip == ip)
    if since:
        query = query.where(AbuseEvent.created_at >= since)
    if until:
        query = query.where(AbuseEvent.created_at < until)
    return query


def _citizen_by_national_id(national_id: str) -> Account:
    account = db.session.scalar(
        select(Account).where(Account.national_id == national_id, Account.role == "citizen")
    )
    if account is None:
        raise NotFound()
    return account


def list_suspensions(*, national_id: str) -> list[BookingSuspension]:
    """Every suspension of a citizen, newest first."""
    account = _citizen_by_national_id(national_id)
    return list(
        db.session.scalars(
            select(BookingSuspension)
            .where(BookingSuspension.account_id == account.id)
            .order_by(BookingSuspension.created_at.desc(), BookingSuspension.id.desc())
        )
    )


def lift_suspension(*, national_id: str, admin_id: int, kind: str | None = None) -> list[BookingSuspension]:
    """Lift a citizen's suspensions in force (optionally of one kind); returns those lifted."""
    account = _citizen_by_national_id(national_id)
    now = clock.now()
    conditions = [
        BookingSuspension.account_id == account.id,
        BookingSuspension.lifted_at.is_(None),
        BookingSuspension.until > now,
    ]
    if kind:
        conditions.append(BookingSuspension.kind == kind)
    ids = db.session.scalars(select(BookingSuspension.id).where(*conditions)).all()
    if ids:
        db.session.execute(
            update(BookingSuspension)
            .where(BookingSuspension.id.in_(ids), BookingSuspension.lifted_at.is_(None))
            .values(lifted_at=now, lifted_by=admin_id)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    db.session.expire_all()
    return list(db.session.scalars(select(BookingSuspension).where(BookingSuspension.id.in_(ids))))


# ------------------------------------------------------------------ interfaces for queue and urgent


@dataclass(frozen=True, slots=True)
class CheckedIn:
    """A booking just checked in at its centre (the queue turns it into a ticket)."""

    booking_id: int
    reference: str
    account_id: int
    centre_id: str
    service_code: str
    kind: str
    slot_start: dt.datetime | None
    late: bool


@dataclass(frozen=True, slots=True)
class UpcomingVisit:
    """A confirmed booking starting soon (for reminders)."""

    booking_id: int
    reference: str
    account_id: int
    centre_id: str
    timezone: str
    service_code: str
    slot_start: dt.datetime


def check_in_window(booking: Booking) -> tuple[dt.datetime, dt.datetime]:
    """When a booking may check in: around its slot start, or its whole urgent day (centre-local)."""
    if booking.kind == "urgent" or booking.slot is None:
        from booking.slotgen import local_day_bounds_utc

        return local_day_bounds_utc(booking.urgent_date, booking.centre.timezone)
    start = booking.slot.start
    return (
        start - dt.timedelta(minutes=_cfg("CHECK_IN_BEFORE_MINUTES")),
        start + dt.timedelta(minutes=_cfg("CHECK_IN_AFTER_MINUTES")),
    )


def mark_checked_in(*, reference: str, centre_id: str, allow_late: bool = False) -> CheckedIn:
    """Check a confirmed booking in at its centre inside its window (no commit)."""
    booking = db.session.scalar(
        select(Booking)
        .options(joinedload(Booking.slot), joinedload(Booking.centre))
        .where(Booking.reference == normalise_reference(reference))
    )
    if booking is None or booking.centre_id != centre_id:
        raise errors.BookingNotFound()
    if booking.status == "held":
        raise errors.BookingNotConfirmed(details={"status": booking.status})
    if booking.status != "confirmed":
        raise errors.InvalidBookingState(details={"status": booking.status})
    now = clock.now()
    tz = booking.centre.timezone
    opens, closes = check_in_window(booking)
    window = {"window_start": local_iso(opens, tz), "window_end": local_iso(closes, tz)}
    late = False
    if now < opens:
        raise errors.CheckInWindow(details={**window, "reason": "too_early"})
    if now > closes:
        same_day = (
            booking.slot is not None
            and now.astimezone(zoneinfo.ZoneInfo(tz)).date() == booking.slot.local_date
        )
        if not (allow_late and same_day and booking.kind == "regular"):
            raise errors.CheckInWindow(details={**window, "reason": "too_late"})
        late = True
    changed = db.session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == "confirmed")
        .values(status="checked_in", checked_in_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise errors.InvalidBookingState(details={"reason": "changed_concurrently"})
    booking.status, booking.checked_in_at = "checked_in", now
    return CheckedIn(
        booking_id=booking.id,
        reference=booking.reference,
        account_id=booking.account_id,
        centre_id=booking.centre_id,
        service_code=booking.service_code,
        kind=booking.kind,
        slot_start=booking.slot.start if booking.slot is not None else None,
        late=late,
    )


def complete_booking(*, booking_id: int) -> None:
    """A checked-in booking's visit is over (no commit)."""
    db.session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.status == "checked_in")
        .values(status="completed", completed_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def create_urgent_booking(
    *, account_id: int, centre_id: str, service_code: str, local_date: dt.date
) -> Booking:
    """An approved urgent pass for a day from the daily reserve, outside slot capacity (no commit)."""
    from app.catalogue.services import get_offering

    offering = get_offering(centre_id=centre_id, service_code=service_code)
    reserve = offering.urgent_reserve_per_day
    if reserve <= 0:
        raise errors.UrgentReserveExhausted(details={"date": local_date.isoformat(), "reserve": reserve})
    db.session.execute(
        _dialect()
        .insert(UrgentReserveUsage)
        .values(offering_id=offering.id, local_date=local_date, used=0)
        .on_conflict_do_nothing(index_elements=["offering_id", "local_date"])
    )
    taken = db.session.execute(
        update(UrgentReserveUsage)
        .where(
            UrgentReserveUsage.offering_id == offering.id,
            UrgentReserveUsage.local_date == local_date,
            UrgentReserveUsage.used < reserve,
        )
        .values(used=UrgentReserveUsage.used + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise errors.UrgentReserveExhausted(details={"date": local_date.isoformat(), "reserve": reserve})
    now = clock.now()
    booking = Booking(
        reference=_new_reference(),
        account_id=account_id,
        slot_id=None,
        offering_id=offering.id,
        centre_id=offering.centre_id,
        service_code=offering.service_code,
        service_group=offering.service.group,
        kind="urgent",
        urgent_date=local_date,
        status="confirmed",
        holds_seat=False,
        created_at=now,
        confirmed_at=now,
    )
    db.session.add(booking)
    db.session.flush()
    return booking


def confirmed_bookings_starting(*, start: dt.datetime, end: dt.datetime) -> list[UpcomingVisit]:
    """Confirmed regular bookings whose slot starts in [start, end)."""
    rows = db.session.execute(
        select(Booking, Slot.start, Centre.timezone)
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Centre, Centre.id == Booking.centre_id)
        .where(Booking.status == "confirmed", Slot.start >= start, Slot.start < end)
        .order_by(Slot.start, Booking.id)
    ).all()
    return [
        UpcomingVisit(
            booking_id=b.id,
            reference=b.reference,
            account_id=b.account_id,
            centre_id=b.centre_id,
            timezone=tz,
            service_code=b.service_code,
            slot_start=slot_start,
        )
        for b, slot_start, tz in rows
    ]


__all__ = [
    "CheckedIn",
    "UpcomingVisit",
    "cancel_booking",
    "complete_booking",
    "confirm_booking",
    "confirmed_bookings_starting",
    "create_urgent_booking",
    "hold_slot",
    "mark_checked_in",
    "reschedule_booking",
]
