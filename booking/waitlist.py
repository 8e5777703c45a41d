"""Waitlists (SPEC §9): a seat that comes free goes to whoever waits for it, never back to open sale first.

Two kinds of waiting share one hand-over: the entrants a drawn draw waitlisted (in draw order), and the
citizens on the waitlist of a first-come offering (in join order). `offer_freed_seats` runs inside the
transaction that frees a seat, under that slot's row lock, so the seat is offered before anyone else can
see it free: each offer is a held booking for WAITLIST_OFFER_MINUTES that carries its entry id under a
unique index, and the entry is claimed with `FOR UPDATE SKIP LOCKED` plus a conditional status change, so
two seats freed at once go to two different people and no entry is ever offered twice. A lapsed or
cancelled offer frees its seat through the same path, and the next in line gets it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Offering, Service
from app.database import is_postgres
from app.errors import AppError, ValidationFailed
from app.extensions import db
from booking import errors
from booking.draws import _audit, check_group_quota, part_of_day
from booking.models import Booking, Slot
from booking.release_models import Draw, DrawEntry, WaitlistEntry


def _cfg(name: str) -> Any:
    return current_app.config[name]


def _postgres() -> bool:
    return is_postgres(db.session.get_bind())


# --------------------------------------------------------------------------------- citizen's side


def join_waitlist(
    *,
    account_id: int,
    service_code: str,
    centre_id: str,
    date_from: dt.date,
    date_to: dt.date,
    part_of_day: str = "any",
) -> tuple[WaitlistEntry, int]:
    """Wait for a seat of a first-come offering between two local dates; returns (entry, position)."""
    from booking.services import _check_suspensions, _get_account, check_eligibility, horizon_days

    offering = db.session.scalar(
        select(Offering).where(
            Offering.centre_id == centre_id, Offering.service_code == service_code, Offering.active.is_(True)
        )
    )
    if offering is None:
        raise ValidationFailed(details={"fields": {"service": ["This centre does not offer this service."]}})
    if offering.allocation != "first_come":
        raise errors.DrawAllocation(details={"service": service_code, "centre_id": centre_id})
    account = _get_account(account_id)
    tz = offering.centre.timezone
    now = clock.now()
    today = now.astimezone(zoneinfo.ZoneInfo(tz)).date()
    if date_to < date_from:
        raise ValidationFailed(details={"fields": {"to": ["Must not be before `from`."]}})
    if date_from < today:
        raise ValidationFailed(details={"fields": {"from": ["Must not be in the past."]}})
    latest = today + dt.timedelta(days=horizon_days(expatriate=account.is_expatriate, offering=offering))
    if date_to > latest:
        raise ValidationFailed(
            details={"fields": {"to": [f"Outside the booking horizon (at most {latest.isoformat()})."]}}
        )
    service = offering.service
    group = service.group
    try:
        _check_suspensions(account, service, now, tz)
        check_eligibility(account=account, service=service, today=date_from)
        check_group_quota(account_id, group)
        entry = WaitlistEntry(
            account_id=account_id,
            offering_id=offering.id,
            centre_id=offering.centre_id,
            service_code=service.code,
            service_group=group,
            date_from=date_from,
            date_to=date_to,
            part_of_day=part_of_day,
            status="waiting",
            created_at=now,
        )
        db.session.add(entry)
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise errors.AlreadyWaitlisted(details={"service_group": group}) from exc
    except Exception:
        db.session.rollback()
        raise
    return entry, waitlist_position(entry)


def waitlist_position(entry: WaitlistEntry) -> int | None:
    """1 + the citizens waiting ahead for the same offering (None once no longer waiting)."""
    if entry.status != "waiting":
        return None
    ahead = db.session.scalar(
        select(func.count()).where(
            WaitlistEntry.offering_id == entry.offering_id,
            WaitlistEntry.status == "waiting",
            WaitlistEntry.id < entry.id,
        )
    )
    return int(ahead) + 1


def list_waitlist(*, account_id: int):
    """The citizen's waitlist places, newest first (a query to paginate)."""
    return (
        select(WaitlistEntry)
        .where(WaitlistEntry.account_id == account_id)
        .order_by(WaitlistEntry.created_at.desc(), WaitlistEntry.id.desc())
    )


def offered_booking(waitlist_id: int) -> Booking | None:
    """The booking offered from a waitlist place, if any."""
    return db.session.scalar(select(Booking).where(Booking.waitlist_entry_id == waitlist_id))


def get_waitlist_entry(*, account_id: int, waitlist_id: int) -> WaitlistEntry:
    """One of the citizen's own waitlist places (another's answers 404)."""
    entry = db.session.scalar(
        select(WaitlistEntry).where(WaitlistEntry.id == waitlist_id, WaitlistEntry.account_id == account_id)
    )
    if entry is None:
        raise errors.WaitlistNotFound()
    return entry


def leave_waitlist(*, account_id: int, waitlist_id: int) -> WaitlistEntry:
    """Leave a waitlist (an offer already made stays the citizen's booking to confirm or cancel)."""
    entry = get_waitlist_entry(account_id=account_id, waitlist_id=waitlist_id)
    if entry.status == "waiting":
        db.session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.id == entry.id, WaitlistEntry.status == "waiting")
            .values(status="left", left_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        db.session.expire_all()
    return db.session.get(WaitlistEntry, waitlist_id)


# ----------------------------------------------------------------------------------- the hand-over


def offer_freed_seats(*, slot_id: int, now: dt.datetime) -> int:
    """Offer the slot's free seats to those waiting for them (caller holds the slot lock; no commit).

    Returns how many seats were offered. Called wherever a seat is freed (expired hold, cancel past its
    delay, capacity raised), in the freeing transaction.
    """
    row = db.session.execute(
        select(Slot, Offering)
        .join(Offering, Offering.id == Slot.offering_id)
        .where(Slot.id == slot_id)
        .execution_options(populate_existing=True)  # `booked` was just changed by a Core UPDATE
    ).first()
    if row is None:
        return 0
    slot, offering = row
    free = slot.capacity - slot.booked
    if free <= 0 or not slot.open:
        return 0
    if slot.start <= now + dt.timedelta(minutes=_cfg("BOOKING_CUTOFF_MINUTES")):
        return 0  # too soon to be booked by anyone: nothing to hand over
    draw = db.session.scalar(
        select(Draw).where(
            Draw.offering_id == offering.id,
            Draw.status == "drawn",
            Draw.waitlist_open.is_(True),
            Draw.days_from <= slot.local_date,
            Draw.days_to >= slot.local_date,
        )
    )
    if draw is None and offering.allocation != "first_come":
        return 0
    part = part_of_day(slot.start, offering.centre.timezone)
    service = db.session.get(Service, offering.service_code)
    offered = 0
    while offered < free:
        # One at a time: a transaction locks only the entry it is about to offer to, so SKIP LOCKED
        # passes over nobody who is not being served by another transaction at this very moment.
        candidates = _draw_candidates(draw, part) if draw is not None else _waitlist_candidates(slot, part)
        if not candidates:
            if draw is not None:
                _close_draw_waitlist_if_empty(draw)
            break
        outcome = _offer_one(candidates[0], slot, offering, service, draw, now)
        if outcome == "no_seat":
            break
        offered += outcome == "offered"
    return offered


def _locking(query):
    return query.with_for_update(skip_locked=True) if _postgres() else query


def _draw_candidates(draw: Draw, part: str) -> list[DrawEntry]:
    return list(
        db.session.scalars(
            _locking(
                select(DrawEntry)
                .where(
                    DrawEntry.draw_id == draw.id,
                    DrawEntry.status == "waitlisted",
                    DrawEntry.part_of_day.in_(("any", part)),
                )
                .order_by(DrawEntry.rank)
                .limit(1)
            )
        )
    )


def _waitlist_candidates(slot: Slot, part: str) -> list[WaitlistEntry]:
    return list(
        db.session.scalars(
            _locking(
                select(WaitlistEntry)
                .where(
                    WaitlistEntry.offering_id == slot.offering_id,
                    WaitlistEntry.status == "waiting",
                    WaitlistEntry.date_from <= slot.local_date,
                    WaitlistEntry.date_to >= slot.local_date,
                    WaitlistEntry.part_of_day.in_(("any", part)),
                )
                .order_by(WaitlistEntry.id)
                .limit(1)
            )
        )
    )


def _close_draw_waitlist_if_empty(draw: Draw) -> None:
    """No entrant waits any more: the draw's days go back to first-come sale."""
    waiting = db.session.scalar(
        select(DrawEntry.id).where(DrawEntry.draw_id == draw.id, DrawEntry.status == "waitlisted").limit(1)
    )
    if waiting is None:
        db.session.execute(
            update(Draw)
            .where(Draw.id == draw.id)
            .values(waitlist_open=False)
            .execution_options(synchronize_session=False)
        )


def _refusal(account: Account | None, service: Service, timezone: str, today: dt.date) -> str | None:
    from booking.services import _check_suspensions, check_eligibility

    if account is None or not account.is_verified:
        return "account"
    try:
        _check_suspensions(account, service, clock.now(), timezone)
        check_eligibility(account=account, service=service, today=today)
    except AppError as refusal:
        return str(refusal.details.get("reason") or refusal.code)[:40]
    return None


def _offer_one(
    entry: DrawEntry | WaitlistEntry, slot: Slot, offering: Offering, service: Service, draw: Draw | None, now
) -> str:
    """Offer one seat of `slot` to `entry` as a held booking: offered, skipped (entry closed), or no_seat."""
    from booking.services import _insert_booking, _notify

    is_draw = draw is not None
    model = DrawEntry if is_draw else WaitlistEntry
    waiting = "waitlisted" if is_draw else "waiting"
    account = db.session.get(Account, entry.account_id)
    reason = _refusal(account, service, offering.centre.timezone, slot.local_date)
    if reason is not None:
        closed = (
            {"status": "lost", "excluded_reason": reason}
            if is_draw
            else {"status": "closed", "closed_reason": reason}
        )
        db.session.execute(
            update(model)
            .where(model.id == entry.id)
            .values(**closed)
            .execution_options(synchronize_session=False)
        )
        return "skipped"
    taken = db.session.execute(
        update(Slot)
        .where(Slot.id == slot.id, Slot.open.is_(True), Slot.booked < Slot.capacity)
        .values(booked=Slot.booked + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        return "no_seat"
    expires = min(now + dt.timedelta(minutes=_cfg("WAITLIST_OFFER_MINUTES")), slot.start)
    try:
        with db.session.begin_nested():
            booking = _insert_booking(
                {
                    "account_id": entry.account_id,
                    "slot_id": slot.id,
                    "offering_id": offering.id,
                    "centre_id": offering.centre_id,
                    "service_code": offering.service_code,
                    "service_group": service.group,
                    "kind": "regular",
                    "status": "held",
                    "holds_seat": True,
                    "hold_expires_at": expires,
                    "created_at": now,
                    ("draw_entry_id" if is_draw else "waitlist_entry_id"): entry.id,
                }
            )
            claimed = db.session.execute(
                update(model)
                .where(model.id == entry.id, model.status == waiting)
                .values(status="offered", **({} if is_draw else {"offered_at": now}))
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                raise _AlreadyClaimed()
    except (IntegrityError, _AlreadyClaimed) as exc:
        db.session.execute(
            update(Slot)
            .where(Slot.id == slot.id)
            .values(booked=Slot.booked - 1)
            .execution_options(synchronize_session=False)
        )
        if isinstance(exc, IntegrityError):
            # The citizen holds another booking of the group now: their wait is over.
            closed = (
                {"status": "lost", "excluded_reason": "per_group"}
                if is_draw
                else {"status": "closed", "closed_reason": "per_group"}
            )
            db.session.execute(
                update(model)
                .where(model.id == entry.id, model.status == waiting)
                .values(**closed)
                .execution_options(synchronize_session=False)
            )
        return "skipped"
    _notify(
        booking,
        "waitlist_offer",
        dedupe=f"waitlist_offer:{booking.id}",
        start=slot.start,
        until_time=expires,
        **({"draw_id": draw.id} if is_draw else {"waitlist_id": entry.id}),
    )
    if is_draw:
        _audit(
            draw,
            "draw.offer",
            actor_id=None,
            actor_role="system",
            details={"entry_token": entry.entry_token, "slot_id": slot.id, "reference": booking.reference},
        )
    return "offered"


class _AlreadyClaimed(Exception):
    """The entry stopped waiting between its selection and its claim."""
