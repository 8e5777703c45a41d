"""Seats: taken by a conditional UPDATE, freed exactly once, and handed to whoever waits before open sale.

- A booking's seats (one per applicant, `bookings.seats`) are taken together by `UPDATE slots SET
  booked = booked + n WHERE id = :id AND open AND booked + n <= capacity` checked by rowcount, in the
  same transaction as the booking INSERT: all of them or none.
- Seats are freed only by flipping `bookings.holds_seat` true → false with a conditional UPDATE, and
  `booked` is decremented by exactly the seats of the rows that UPDATE matched (so twice never happens).
- Expired holds and cancelled seats whose release delay has passed are released lazily when a hold finds
  their slot full (and counted as free wherever availability is read), so they work with the scheduler
  stopped; the `expire_holds` job sweeps the rest.

The hand-over: two kinds of waiting share it, the entrants a drawn draw waitlisted (in draw order), and
the citizens on the waitlist of a first-come offering (in join order). `offer_freed_seats` runs inside the
transaction that frees a seat, under that slot's row lock, so the seat is offered before anyone else can
see it free: each offer is a held booking for WAITLIST_OFFER_MINUTES that carries its entry id under a
unique index, and the entry is claimed with `FOR UPDATE SKIP LOCKED` plus a conditional status change, so
two seats freed at once go to two different people and no entry is ever offered twice. A lapsed or
cancelled offer frees its seat through the same path, and the next in line gets it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Offering, Service
from app.dialect import for_update
from app.errors import AppError
from app.extensions import db
from booking import errors, seatgate
from booking.abuse import check_applicants
from booking.applicants import Applicant, entrant
from booking.draws import audit_draw
from booking.locks import lock_slots
from booking.lottery import part_of_day
from booking.models import Booking, Slot
from booking.notices import notify_booking
from booking.references import insert_booking
from booking.release_models import Draw, DrawEntry, WaitlistEntry


def _cfg(name: str) -> Any:
    return current_app.config[name]


# ------------------------------------------------------------------------------------- taking a seat


def take_seat(slot_id: int, seats: int = 1) -> bool:
    """The conditional seat UPDATE: true when all `seats` were taken (its row lock is held until commit)."""
    taken = db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.open.is_(True), Slot.booked + seats <= Slot.capacity)
        .values(booked=Slot.booked + seats)
        .execution_options(synchronize_session=False)
    ).rowcount
    return taken == 1


def return_seat(slot_id: int, seats: int = 1) -> None:
    """Give seats of the slot back (`booked - seats`): a move's old seats, or those of a failed booking."""
    db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id)
        .values(booked=Slot.booked - seats)
        .execution_options(synchronize_session=False)
    )


def seats_left(slot_id: int) -> int:
    """The slot's seats not booked, as the database has them now (for a refusal's `available`)."""
    free = db.session.scalar(select(Slot.capacity - Slot.booked).where(Slot.id == slot_id))
    return max(free or 0, 0)


def slot_full(slot_id: int, *, seats: int = 1, available: int | None = None) -> errors.SlotFull:
    """409 slot_full naming the seats asked for and those left (read now unless given)."""
    left = seats_left(slot_id) if available is None else max(available, 0)
    return errors.SlotFull(details={"slot_id": slot_id, "available": left, "seats": seats})


def next_release(slot_id: int):
    """When the slot's first seat falls due for release (an expiring hold, a cancel's delay), if any."""
    due_at = case((Booking.status == "held", Booking.hold_expires_at), else_=Booking.seat_release_at)
    return select(func.min(due_at)).where(
        Booking.slot_id == slot_id,
        Booking.holds_seat.is_(True),
        Booking.status.in_(("held", "cancelled")),
    )


# ------------------------------------------------------------------------------------ seat release


def due_release(now: dt.datetime):
    """Bookings whose seat should be free by now: an expired hold, or a cancel whose delay has passed."""
    return and_(
        Booking.holds_seat.is_(True),
        or_(
            and_(Booking.status == "held", Booking.hold_expires_at <= now),
            and_(Booking.status == "cancelled", Booking.seat_release_at <= now),
        ),
    )


def free_due_seats(slot_id: int, now: dt.datetime) -> int:
    """Free the due seats of one slot (caller holds the slot lock); returns how many seats were freed."""
    seats = db.session.scalars(
        update(Booking)
        .where(Booking.slot_id == slot_id, due_release(now))
        .values(holds_seat=False, status=case((Booking.status == "held", "expired"), else_=Booking.status))
        .returning(Booking.seats)
        .execution_options(synchronize_session=False)
    ).all()
    freed = sum(seats)  # a family booking frees all its seats at once
    if freed:
        db.session.execute(
            update(Slot)
            .where(Slot.id == slot_id)
            .values(booked=Slot.booked - freed)
            .execution_options(synchronize_session=False)
        )
        offer_freed_seats(slot_id=slot_id, now=now)  # those who wait come before open sale
    return freed


def release_slot_seats(*, slot_id: int) -> int:
    """Free a slot's due seats in a short transaction of its own; returns how many seats."""
    try:
        lock_slots([slot_id])
        freed = free_due_seats(slot_id, clock.now())
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if freed:
        seatgate.reopen(slot_id)
    return freed


def release_due_seats() -> int:
    """Free every due seat (expired holds, cancels past their delay), one slot per transaction; how many."""
    now = clock.now()
    slot_ids = db.session.scalars(
        select(Booking.slot_id).where(Booking.slot_id.is_not(None), due_release(now)).distinct()
    ).all()
    db.session.rollback()
    return sum(release_slot_seats(slot_id=slot_id) for slot_id in slot_ids)


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


def _draw_candidates(draw: Draw, part: str) -> list[DrawEntry]:
    return list(
        db.session.scalars(
            for_update(
                select(DrawEntry)
                .where(
                    DrawEntry.draw_id == draw.id,
                    DrawEntry.status == "waitlisted",
                    DrawEntry.part_of_day.in_(("any", part)),
                )
                .order_by(DrawEntry.rank)
                .limit(1),
                skip_locked=True,
            )
        )
    )


def _waitlist_candidates(slot: Slot, part: str) -> list[WaitlistEntry]:
    return list(
        db.session.scalars(
            for_update(
                select(WaitlistEntry)
                .where(
                    WaitlistEntry.offering_id == slot.offering_id,
                    WaitlistEntry.status == "waiting",
                    WaitlistEntry.date_from <= slot.local_date,
                    WaitlistEntry.date_to >= slot.local_date,
                    WaitlistEntry.part_of_day.in_(("any", part)),
                )
                .order_by(WaitlistEntry.id)
                .limit(1),
                skip_locked=True,
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


def _refusal(
    account: Account | None, entry: DrawEntry | WaitlistEntry, service: Service, timezone: str, today: dt.date
) -> tuple[str | None, list[Applicant] | None]:
    """Why the entry gets no seat (or None), and whom its seat is for (None: the citizen alone)."""
    if account is None or not account.is_verified:
        return "account", None
    national_id = getattr(entry, "national_id", None) or account.national_id
    try:
        person = entrant(account, national_id)
        check_applicants(account, [person], service, now=clock.now(), tz=timezone, today=today)
    except AppError as refusal:
        return str(refusal.details.get("reason") or refusal.code)[:40], None
    return None, None if person.is_booker else [person]


def _offer_one(
    entry: DrawEntry | WaitlistEntry, slot: Slot, offering: Offering, service: Service, draw: Draw | None, now
) -> str:
    """Offer one seat of `slot` to `entry` as a held booking: offered, skipped (entry closed), or no_seat."""
    account = db.session.get(Account, entry.account_id)
    reason, people = _refusal(account, entry, service, offering.centre.timezone, slot.local_date)
    if reason is not None:
        _close_entry(entry, is_draw=draw is not None, reason=reason)
        return "skipped"
    if not take_seat(slot.id):
        return "no_seat"
    expires = min(now + dt.timedelta(minutes=_cfg("WAITLIST_OFFER_MINUTES")), slot.start)
    booking = _claim_with_offer(
        entry, slot, offering, service, is_draw=draw is not None, now=now, expires=expires, people=people
    )
    if booking is None:
        return "skipped"
    notify_booking(
        booking,
        "waitlist_offer",
        dedupe=f"waitlist_offer:{booking.id}",
        start=slot.start,
        until_time=expires,
        **({"draw_id": draw.id} if draw is not None else {"waitlist_id": entry.id}),
    )
    if draw is not None:
        audit_draw(
            draw,
            "draw.offer",
            actor_id=None,
            actor_role="system",
            details={"entry_token": entry.entry_token, "slot_id": slot.id, "reference": booking.reference},
        )
    return "offered"


def _close_entry(
    entry: DrawEntry | WaitlistEntry, *, is_draw: bool, reason: str, if_status: str | None = None
):
    """End an entry's wait for `reason` (a draw entry is `lost`, a waitlist place `closed`)."""
    model = DrawEntry if is_draw else WaitlistEntry
    closed = (
        {"status": "lost", "excluded_reason": reason}
        if is_draw
        else {"status": "closed", "closed_reason": reason}
    )
    conditions = [model.id == entry.id] + ([model.status == if_status] if if_status else [])
    db.session.execute(
        update(model).where(*conditions).values(**closed).execution_options(synchronize_session=False)
    )


def _claim_with_offer(
    entry: DrawEntry | WaitlistEntry,
    slot: Slot,
    offering: Offering,
    service: Service,
    *,
    is_draw: bool,
    now: dt.datetime,
    expires: dt.datetime,
    people: list[Applicant] | None = None,
) -> Booking | None:
    """The held booking offered to `entry` and the entry claimed together; None (seat given back) if not."""
    model = DrawEntry if is_draw else WaitlistEntry
    waiting = "waitlisted" if is_draw else "waiting"
    try:
        with db.session.begin_nested():
            booking = insert_booking(
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
                },
                people,
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
        return_seat(slot.id)
        if isinstance(exc, IntegrityError):
            # The citizen holds another booking of the group now: their wait is over.
            _close_entry(entry, is_draw=is_draw, reason="per_group", if_status=waiting)
        return None
    return booking


class _AlreadyClaimed(Exception):
    """The entry stopped waiting between its selection and its claim."""
