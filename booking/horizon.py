"""When a slot may be booked: after the cut-off, and within the caller's horizon (30 days, 90 abroad).

Availability filters by these bounds in SQL and a hold checks them again; both take them from here.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app

from app.catalogue.models import Offering
from booking import errors
from booking.localtime import local_iso


def horizon_days(*, expatriate: bool, offering: Offering | None = None) -> int:
    """How far ahead a caller may book: residents 30 days, expatriates 90; an offering may shorten it."""
    config = current_app.config
    days = config["EXPATRIATE_HORIZON_DAYS"] if expatriate else config["RESIDENT_HORIZON_DAYS"]
    if offering is not None and offering.horizon_days:
        days = min(days, offering.horizon_days)
    return int(days)


def longest_horizon_days(offering: Offering) -> int:
    """The furthest anyone may book this offering ahead (how far its slots are generated)."""
    return max(
        horizon_days(expatriate=False, offering=offering), horizon_days(expatriate=True, offering=offering)
    )


def earliest_start(now: dt.datetime) -> dt.datetime:
    """Slots starting at or before this instant are past the cut-off (BOOKING_CUTOFF_MINUTES from now)."""
    return now + dt.timedelta(minutes=current_app.config["BOOKING_CUTOFF_MINUTES"])


def latest_start(now: dt.datetime, *, expatriate: bool, offering: Offering | None = None) -> dt.datetime:
    """The last start the caller may book (the end of their horizon)."""
    return now + dt.timedelta(days=horizon_days(expatriate=expatriate, offering=offering))


def check_booking_window(
    start: dt.datetime, *, now: dt.datetime, expatriate: bool, offering: Offering, timezone: str
) -> None:
    """Refuse a slot past the cut-off or beyond the caller's horizon (422 outside_horizon)."""
    earliest = earliest_start(now)
    latest = latest_start(now, expatriate=expatriate, offering=offering)
    if start <= earliest:
        raise errors.OutsideHorizon(details={"reason": "cutoff", "earliest": local_iso(earliest, timezone)})
    if start > latest:
        raise errors.OutsideHorizon(details={"reason": "horizon", "latest": local_iso(latest, timezone)})
