"""Slot regeneration: an offering's future slots kept in line with its schedule (the database side).

`booking.slotgen` computes the slot times from the weekly hours (pure); this module brings the `slots`
table to match them: free slots no longer wanted disappear, booked ones stay closed to new bookings,
changed capacity and ends are updated, and missing ones are inserted if absent.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import joinedload

from app import clock
from app.catalogue.models import Closure, Offering
from app.dialect import dialect_insert
from app.extensions import db
from booking.horizon import longest_horizon_days
from booking.models import Booking, Slot
from booking.seats import offer_freed_seats
from booking.slotgen import SlotTime, generate_slot_times


def regenerate_offering_slots(offering: Offering, *, now: dt.datetime | None = None) -> int:
    """Bring an offering's future slots in line with its schedule (free ones only); returns slots added."""
    now = now or clock.now()
    desired = _desired_slots(offering, now)
    by_start = {s.start: s for s in desired}
    seats = offering.bookable_capacity
    existing = db.session.execute(
        select(Slot.id, Slot.start, Slot.end, Slot.open, Slot.capacity, Slot.booked).where(
            Slot.offering_id == offering.id, Slot.start > now
        )
    ).all()
    _retire_unwanted([row.id for row in existing if row.start not in by_start])
    for slot_id in _update_kept(existing, by_start, seats):
        # Seats the schedule added go to those who wait for them before open sale (the UPDATE above
        # holds the slot's row lock in this transaction, as offer_freed_seats requires).
        offer_freed_seats(slot_id=slot_id, now=now)
    have = {row.start for row in existing}
    return _insert_missing(offering, [s for s in desired if s.start not in have], seats, now)


def _desired_slots(offering: Offering, now: dt.datetime) -> list[SlotTime]:
    """The future slot times the offering's schedule gives up to its longest horizon (none if not live)."""
    centre = offering.centre
    if not (offering.active and centre.active and offering.service.active):
        return []
    today = now.astimezone(zoneinfo.ZoneInfo(centre.timezone)).date()
    closures = set(
        db.session.scalars(
            select(Closure.date).where(Closure.centre_id == centre.id, Closure.date >= today)
        ).all()
    )
    desired = generate_slot_times(
        weekly_hours=offering.effective_hours or {},
        closures=closures,
        timezone=centre.timezone,
        slot_minutes=offering.slot_minutes,
        first_day=today,
        last_day=today + dt.timedelta(days=longest_horizon_days(offering) + 1),
    )
    return [s for s in desired if s.start > now]


def _retire_unwanted(gone: Sequence[int]) -> None:
    """Free slots nobody ever pointed at disappear; the rest stay, closed to new bookings."""
    for chunk in _chunks(gone, 500):
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


def _update_kept(existing: Sequence[Any], by_start: dict[dt.datetime, SlotTime], seats: int) -> list[int]:
    """Slots still wanted reopen with the schedule's end and capacity (never below the seats booked).

    Returns the slots that gained free seats (capacity raised, or reopened with room)."""
    gained = []
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
            was_free = row.capacity - row.booked if row.open else 0
            if seats - row.booked > was_free:
                gained.append(row.id)
    return gained


def _insert_missing(offering: Offering, missing: Sequence[SlotTime], seats: int, now: dt.datetime) -> int:
    """Insert the slots the schedule wants and the table lacks; returns how many were added."""
    if not missing:
        return 0
    rows = [
        {
            "offering_id": offering.id,
            "start": s.start,
            "end": s.end,
            "local_date": s.local_date,
            "capacity": seats,
            "booked": 0,
            "open": True,
        }
        for s in missing
    ]
    count = select(func.count()).where(Slot.offering_id == offering.id, Slot.start > now)
    before = db.session.scalar(count)
    for chunk in _chunks(rows, 1000):
        # Insert-if-absent: a second scheduler running the same job at once adds nothing twice.
        stmt = dialect_insert(Slot).on_conflict_do_nothing(index_elements=["offering_id", "start"])
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
