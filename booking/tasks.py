"""Scheduled jobs of the booking domain; each is idempotent and safe if two schedulers run it at once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from app import clock
from app.extensions import db
from booking import abuse, draw_run, seats, services, slot_regeneration, waitlist

REMINDER_2H = dt.timedelta(hours=2)


def generate_slots() -> int:
    """Keep every active offering's slots filled up to the longest horizon; returns slots added."""
    return slot_regeneration.regenerate_slots()


def expire_holds() -> int:
    """Free the seats of expired holds and of cancellations past their release delay; returns how many."""
    return seats.release_due_seats()


def mark_no_shows() -> int:
    """Confirmed bookings not checked in by slot end + grace become no-shows (and may suspend)."""
    return abuse.mark_no_shows()


def run_due_draws() -> int:
    """Draw every draw whose entries have closed (resumes one that died half-way); returns how many."""
    return draw_run.run_due_draws()


def end_past_waits() -> int:
    """Waits whose days are over end: draw entrants still waiting are told they got no place."""
    return waitlist.end_past_waits()


def send_reminders() -> int:
    """Queue the 24 h and 2 h reminders that are due, each once per booking (a unique dedupe key)."""
    from notifications.services import notify_citizen

    now = clock.now()
    # 26 h: the "day before" in a zone with daylight saving can be 25 h before the visit.
    visits = services.confirmed_bookings_starting(start=now, end=now + dt.timedelta(hours=26))
    added = 0
    for visit in visits:
        kind = reminder_due(slot_start=visit.slot_start, timezone=visit.timezone, now=now)
        if kind is None:
            continue
        prefix = "reminder24" if kind == "reminder_24h" else "reminder2"
        added += notify_citizen(
            account_id=visit.account_id,
            kind=kind,
            params={
                "reference": visit.reference,
                "booking_id": visit.booking_id,
                "centre_id": visit.centre_id,
                "service_code": visit.service_code,
                "start": visit.slot_start.isoformat(),
            },
            dedupe_key=f"{prefix}:{visit.booking_id}",
        )
    db.session.commit()
    return added


def reminder_due(*, slot_start: dt.datetime, timezone: str, now: dt.datetime) -> str | None:
    """Which reminder a visit is due for now: 'reminder_2h', 'reminder_24h' or None.

    The 24 h reminder is due from the same local time on the day before (in the centre's zone, so a
    daylight-saving change does not move it) until 2 h before; the 2 h reminder from 2 h before until
    the start. A reminder missed while the scheduler was down is still sent while its window lasts;
    once the 2 h window opens only the 2 h reminder goes, and nothing goes after the visit started.
    """
    if now >= slot_start:
        return None
    if now >= slot_start - REMINDER_2H:
        return "reminder_2h"
    local = slot_start.astimezone(ZoneInfo(timezone))
    day_before = (local - dt.timedelta(days=1)).astimezone(dt.UTC)  # wall-clock arithmetic
    if now >= day_before:
        return "reminder_24h"
    return None
