"""Who may book, and what is recorded when someone may not: refusals, abuse events, suspensions, quotas.

A refusal for abuse (a suspension in force, not eligible, too many accounts on one device, a quota) is
recorded as an abuse event in a short transaction of its own after the refused command rolled back.
Sanctions follow from behaviour: CANCEL_LIMIT cancels cool booking down, NO_SHOW_LIMIT no-shows suspend
it for high-demand services. Admins list the events and lift suspensions.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import (
    Boolean,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Service
from app.database import UTCDateTime
from app.errors import AppError, Conflict, NotFound
from app.extensions import db
from booking import errors
from booking.applicants import (
    Applicant,
    GroupHolder,
    active_in_group,
    check_dependents_eligibility,
    check_person_eligibility,
    group_refusal,
    is_group_violation,
    suspended_applicant,
)
from booking.localtime import local_iso
from booking.locks import lock_account, lock_device
from booking.models import AbuseEvent, Booking, BookingApplicant, BookingSuspension, DeviceBinding, Slot

log = logging.getLogger(__name__)


def _cfg(name: str) -> Any:
    return current_app.config[name]


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
    "not_a_dependent": "not_a_dependent",
    "quota_exceeded": "quota_active",
    "hold_limit": "quota_holds",
    "booking_suspended": "suspension",
    "not_eligible": "eligibility",
    "device_limit": "device_binding",
    "app_check_failed": "app_check",
    "rate_limited": "rate_limit",
}


def record_refusal(
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


def record_sanction_event(suspension: BookingSuspension) -> None:
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


# ------------------------------------------------------------------------------------ who may book


class Refusals:
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

    class NotADependent(errors.NotADependent, AbuseRefusal):
        pass


def get_citizen(account_id: int, *, lock: bool = False) -> Account:
    """The citizen; with `lock`, loaded under the account row lock (one statement, see `lock_account`)."""
    return check_citizen(db.session.get(Account, account_id, with_for_update=lock or None))


def check_citizen(account: Account | None) -> Account:
    """A verified citizen's account, as read (404 for anyone else, 403 account_not_verified)."""
    if account is None or account.role != "citizen":
        raise NotFound()
    if not account.is_verified:
        raise errors.AccountNotVerified()
    return account


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


def check_suspensions(
    account: Account, service: Service, now: dt.datetime, tz: str, suspensions: Sequence[Any] | None = None
) -> None:
    """The booker's suspensions in force (`suspensions`: as read by `read_standing`; default: read them)."""
    if suspensions is None:
        suspensions = active_suspensions(account_id=account.id, now=now)
    for suspension in suspensions:
        if suspension.scope == "all" or (suspension.scope == "high_demand" and service.high_demand):
            raise Refusals.BookingSuspended(
                details={
                    "reason": suspension.kind,
                    "scope": suspension.scope,
                    "until": local_iso(suspension.until, tz),
                }
            )


# `record` of `check_eligibility` when the caller has not read the registry.
NOT_READ: Any = object()


def check_eligibility(*, account: Account, service: Service, today: dt.date, record: Any = NOT_READ) -> None:
    """Passport renewal only near or past expiry; a first passport only without a valid one.

    `record`: the citizen's registry record (None: not in the registry) when already read; else it is
    looked up."""
    if service.eligibility == "none":
        return
    if record is NOT_READ:
        from app.registry.services import lookup_person

        record = lookup_person(account.national_id)
    try:
        check_person_eligibility(record=record, service=service, today=today)
    except errors.NotEligible as refusal:
        raise Refusals.NotEligible(details=refusal.details) from None


def check_applicants(
    account: Account,
    people: Sequence[Applicant],
    service: Service,
    *,
    now: dt.datetime,
    tz: str,
    today: dt.date,
    suspensions: Sequence[Any] | None = None,
    booker_record: Any = NOT_READ,
) -> None:
    """Who may be booked for: the booker's suspensions, then each applicant's eligibility and suspensions.

    The booker's own eligibility counts only when they are one of the applicants. `suspensions`: the
    booker's, already read (`read_standing`); `booker_record`: their registry record, already read.
    """
    check_suspensions(account, service, now, tz, suspensions)
    found = suspended_applicant(applicants=people, service=service, now=now)
    if found is not None:  # a suspension on a dependent's own account holds for their seat too
        national_id, suspension = found
        raise Refusals.BookingSuspended(
            details={
                "reason": suspension.kind,
                "scope": suspension.scope,
                "until": local_iso(suspension.until, tz),
                "national_id": national_id,
            }
        )
    if any(p.is_booker for p in people):
        check_eligibility(account=account, service=service, today=today, record=booker_record)
    try:
        check_dependents_eligibility(applicants=people, service=service, today=today)
    except errors.NotEligible as refusal:
        raise Refusals.NotEligible(details=refusal.details) from None


def bind_device(account_id: int, device_id: str | None, now: dt.datetime) -> None:
    """At most DEVICE_ACCOUNT_LIMIT accounts book from one device id within DEVICE_WINDOW_DAYS."""
    if not device_id:
        return
    device_id = device_id[:128]
    lock_device(device_id)
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
            raise Refusals.DeviceLimit(
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


@dataclass(frozen=True, slots=True)
class Standing:
    """What a hold asks of the record under the account lock, read in one statement (`read_standing`):
    the booker's suspensions in force (latest end first), the booker's live or lapsed regular bookings, and
    the bookings of the group that name any applicant."""

    suspensions: list[Any]
    mine: list[Any]
    holders: list[GroupHolder]


def _standing_statement() -> Any:
    """The three reads of a hold's checks as one UNION ALL, built once: a kind column, then the columns
    each part needs (typed by the first part, so SQLite's datetimes and booleans come back as such)."""
    text_null, int_null = cast(null(), String), cast(null(), Integer)
    suspensions = select(
        literal_column("'suspension'", String).label("row_kind"),
        BookingSuspension.kind.label("a"),
        BookingSuspension.scope.label("b"),
        text_null.label("reference"),
        int_null.label("slot_id"),
        BookingSuspension.until.label("moment"),
        cast(null(), Boolean).label("expired"),
    ).where(
        BookingSuspension.account_id == bindparam("account"),
        BookingSuspension.lifted_at.is_(None),
        BookingSuspension.until > bindparam("now"),
    )
    mine = select(
        literal_column("'mine'", String),
        Booking.status,
        Booking.service_group,
        Booking.reference,
        Booking.slot_id,
        Booking.hold_expires_at,
        cast(null(), Boolean),
    ).where(
        Booking.account_id == bindparam("account"),
        Booking.kind == "regular",
        Booking.status.in_(("confirmed", "held")),
    )
    holders = (
        select(
            literal_column("'holder'", String),
            BookingApplicant.national_id,
            text_null,
            Booking.reference,
            Booking.slot_id,
            cast(null(), UTCDateTime),
            and_(Booking.status == "held", Booking.hold_expires_at <= bindparam("now")),
        )
        .join(Booking, Booking.id == BookingApplicant.booking_id)
        .where(
            BookingApplicant.national_id.in_(bindparam("people", expanding=True)),
            BookingApplicant.service_group == bindparam("group"),
            BookingApplicant.active.is_(True),
        )
    )
    return union_all(suspensions, mine, holders)


_STANDING = _standing_statement()


def read_standing(*, account_id: int, group: str, now: dt.datetime, national_ids: Sequence[str]) -> Standing:
    """The booker's suspensions, own bookings and the group's holders of these people, in one read (under
    the account lock, so the account's own bookings are as its last command left them)."""
    rows = db.session.execute(
        _STANDING, {"account": account_id, "now": now, "group": group, "people": list(national_ids)}
    ).all()
    suspensions = sorted(
        (_Suspension(r.a, r.b, r.moment) for r in rows if r.row_kind == "suspension"),
        key=lambda s: s.until,
        reverse=True,
    )
    mine = [_Mine(r.a, r.b, r.reference, r.slot_id, r.moment) for r in rows if r.row_kind == "mine"]
    holders = sorted(
        (GroupHolder(r.a, r.reference, r.slot_id, bool(r.expired)) for r in rows if r.row_kind == "holder"),
        key=lambda h: h.national_id,
    )
    return Standing(suspensions, mine, holders)


@dataclass(frozen=True, slots=True)
class _Suspension:
    kind: str
    scope: str
    until: dt.datetime


@dataclass(frozen=True, slots=True)
class _Mine:
    status: str
    service_group: str
    reference: str
    slot_id: int | None
    hold_expires_at: dt.datetime | None


def check_quotas(
    account_id: int,
    group: str,
    now: dt.datetime,
    people: Sequence[Applicant],
    standing: Standing | None = None,
) -> list[int]:
    """Counted under the account lock; the partial unique indexes back the per-group and hold limits.

    One active booking per group is per applicant, whoever booked it. Returns the slots of the expired
    holds in the way (the citizen's own, an applicant's), which the caller releases before holding: they
    never count against a new hold, and both limits are unique indexes on rows still marked held.
    `standing`: the reads already made (`read_standing`); default: read them here.
    """
    if standing is not None:
        mine: Sequence[Any] = standing.mine
    else:
        mine = db.session.execute(
            select(
                Booking.status,
                Booking.service_group,
                Booking.reference,
                Booking.slot_id,
                Booking.hold_expires_at,
            ).where(
                Booking.account_id == account_id,
                Booking.kind == "regular",
                Booking.status.in_(("confirmed", "held")),
            )
        ).all()
    rows = [r for r in mine if r.status == "confirmed" or r.hold_expires_at > now]
    holds = [r for r in rows if r.status == "held"]
    if len(holds) >= _cfg("MAX_HOLDS"):
        raise Refusals.HoldLimit(details={"reason": "hold_limit", "reference": holds[0].reference})
    if standing is not None:
        holders = standing.holders
    else:
        holders = active_in_group(national_ids=[p.national_id for p in people], group=group, now=now)
    live = [h for h in holders if not h.expired_hold]
    if live:
        raise Refusals.ActiveBookingExists(
            details=group_refusal(live[0], group=group, applicants=people).details
        )
    if len(rows) >= _cfg("MAX_ACTIVE_BOOKINGS"):
        raise Refusals.QuotaExceeded(details={"reason": "max_active", "limit": _cfg("MAX_ACTIVE_BOOKINGS")})
    own = [r.slot_id for r in mine if r.status == "held" and r.hold_expires_at <= now]
    return sorted({*own, *(h.slot_id for h in holders if h.slot_id is not None)})


def integrity_refusal(exc: IntegrityError, group: str, people: Sequence[Applicant] = ()) -> AppError:
    """The refusal a unique index gave (after the rollback: it may read who holds the group now)."""
    message = str(exc.orig)
    if "uq_bookings_one_hold" in message or (
        "bookings.account_id" in message and "service_group" not in message
    ):
        return Refusals.HoldLimit(details={"reason": "hold_limit"})
    if is_group_violation(exc):
        details: dict[str, Any] = {"reason": "per_group", "service_group": group}
        national_ids = [p.national_id for p in people]
        holders = active_in_group(national_ids=national_ids, group=group, now=clock.now())
        if holders:
            details = group_refusal(holders[0], group=group, applicants=people).details
        return Refusals.ActiveBookingExists(details=details)
    return Conflict()


# ---------------------------------------------------------------------------------------- sanctions


def apply_cancel_cooldown(account_id: int, now: dt.datetime) -> BookingSuspension | None:
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
            lock_account(account_id)
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
            record_sanction_event(suspension)
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
