"""Catalogue rules: reading the public catalogue and the admin's changes to it."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from blinker import Namespace
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.catalogue.models import Centre, Closure, Counter, Offering, Service
from app.errors import Conflict, NotFound
from app.extensions import db

_signals = Namespace()
# Sent after an admin changes hours, closures or slot shape; booking regenerates future free slots.
schedule_changed = _signals.signal("schedule-changed")


def get_centre(centre_id: str) -> Centre:
    """An active centre, or 404."""
    centre = db.session.get(Centre, centre_id)
    if centre is None or not centre.active:
        raise NotFound()
    return centre


def get_service(code: str) -> Service:
    """An active service, or 404."""
    service = db.session.get(Service, code)
    if service is None or not service.active:
        raise NotFound()
    return service


def get_offering(*, centre_id: str, service_code: str) -> Offering:
    """The active offering of a service at a centre, or 404."""
    offering = db.session.scalar(
        select(Offering).where(
            Offering.centre_id == centre_id, Offering.service_code == service_code, Offering.active.is_(True)
        )
    )
    if offering is None:
        raise NotFound()
    return offering


def list_services():
    """The active services, as a query to paginate."""
    return select(Service).where(Service.active.is_(True)).order_by(Service.code)


def list_centres(*, service: str | None = None, city: str | None = None, kind: str | None = None):
    """Active centres, optionally those offering a service, in a city, or of a kind."""
    query = select(Centre).where(Centre.active.is_(True)).order_by(Centre.id)
    if service:
        query = query.where(
            Centre.id.in_(
                select(Offering.centre_id).where(Offering.service_code == service, Offering.active.is_(True))
            )
        )
    if city:
        query = query.where(Centre.city.ilike(city))
    if kind:
        query = query.where(Centre.kind == kind)
    return query


def centre_today(centre: Centre) -> dt.date:
    """Today's date in the centre's own zone."""
    return clock.now().astimezone(zoneinfo.ZoneInfo(centre.timezone)).date()


WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class OpeningState:
    """Whether a centre is open at an instant, and when it next opens and closes (UTC; None: not soon)."""

    open: bool
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None


def _local_instant(day: dt.date, hhmm: str, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    # "24:00" closes at the next local midnight (a centre open around the clock).
    if hhmm == "24:00":
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
    hour, minute = (int(part) for part in hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone).astimezone(dt.UTC)


def opening_intervals(centre: Centre, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
    """The centre's opening intervals on a local day, in UTC (none on a closure day)."""
    if any(closure.date == day for closure in centre.closures):
        return []
    zone = zoneinfo.ZoneInfo(centre.timezone)
    pairs = (centre.weekly_hours or {}).get(WEEKDAY_KEYS[day.weekday()]) or []
    return sorted(
        (_local_instant(day, pair[0], zone), _local_instant(day, pair[1], zone))
        for pair in pairs
        if isinstance(pair, list | tuple) and len(pair) == 2
    )


def is_open(centre: Centre, at: dt.datetime | None = None) -> bool:
    """Whether the centre is open at `at` (default now), as `opening_state(...).open` says, reading only
    the intervals of that local day and the day before (an interval lies within its local day, or ends at
    the next midnight), not the fortnight `opening_state` merges to tell when it next opens."""
    at = at or clock.now()
    today = at.astimezone(zoneinfo.ZoneInfo(centre.timezone)).date()
    return any(
        start <= at < end
        for day in (today - dt.timedelta(days=1), today)
        for start, end in opening_intervals(centre, day)
    )


def opening_state(
    centre: Centre, at: dt.datetime | None = None, *, look_ahead_days: int = 14
) -> OpeningState:
    """Whether the centre is open at `at` (default now): open until `closes_at`, or closed until `opens_at`.

    Back-to-back intervals (a day open until 24:00 and the next from 00:00) count as one opening."""
    at = at or clock.now()
    zone = zoneinfo.ZoneInfo(centre.timezone)
    today = at.astimezone(zone).date()
    intervals = [
        interval
        for offset in range(-1, look_ahead_days + 1)
        for interval in opening_intervals(centre, today + dt.timedelta(days=offset))
    ]
    merged: list[list[dt.datetime]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        if start <= at < end:
            return OpeningState(open=True, opens_at=None, closes_at=end)
        if start > at:
            return OpeningState(open=False, opens_at=start, closes_at=end)
    return OpeningState(open=False, opens_at=None, closes_at=None)


def upcoming_closures(centre: Centre) -> list[Closure]:
    """Closures from today on, in the centre's zone."""
    today = centre_today(centre)
    return [c for c in centre.closures if c.date >= today]


def _commit_or_conflict() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(details={"reason": "duplicate"}) from exc


def create_centre(**fields: Any) -> Centre:
    """Add a centre."""
    if db.session.get(Centre, fields["id"]) is not None:
        raise Conflict(details={"reason": "duplicate", "id": fields["id"]})
    centre = Centre(**fields)
    db.session.add(centre)
    _commit_or_conflict()
    return centre


def update_centre(centre_id: str, **fields: Any) -> Centre:
    """Change a centre; new hours regenerate future free slots."""
    centre = get_centre(centre_id)
    for name, value in fields.items():
        setattr(centre, name, value)
    _commit_or_conflict()
    if {"weekly_hours", "timezone"} & fields.keys():
        schedule_changed.send(centre.id, offering_id=None)
    return centre


def add_counter(centre_id: str, **fields: Any) -> Counter:
    """Add a counter to a centre."""
    get_centre(centre_id)
    counter = Counter(centre_id=centre_id, **fields)
    db.session.add(counter)
    _commit_or_conflict()
    return counter


def remove_counter(counter_id: int) -> None:
    """Remove a counter."""
    counter = db.session.get(Counter, counter_id)
    if counter is None:
        raise NotFound()
    db.session.delete(counter)
    _commit_or_conflict()


def add_closure(centre_id: str, **fields: Any) -> Closure:
    """Close a centre for a day; free slots of that day disappear, booked ones stay for staff to handle."""
    get_centre(centre_id)
    closure = Closure(centre_id=centre_id, **fields)
    db.session.add(closure)
    _commit_or_conflict()
    schedule_changed.send(centre_id, offering_id=None)
    return closure


def remove_closure(closure_id: int) -> None:
    """Reopen a closed day."""
    closure = db.session.get(Closure, closure_id)
    if closure is None:
        raise NotFound()
    centre_id = closure.centre_id
    db.session.delete(closure)
    _commit_or_conflict()
    schedule_changed.send(centre_id, offering_id=None)


def create_service(**fields: Any) -> Service:
    """Add a service to the catalogue."""
    if db.session.get(Service, fields["code"]) is not None:
        raise Conflict(details={"reason": "duplicate", "code": fields["code"]})
    service = Service(group=fields["code"].split(".", 1)[0], **fields)
    db.session.add(service)
    _commit_or_conflict()
    return service


def update_service(code: str, **fields: Any) -> Service:
    """Change a service."""
    service = db.session.get(Service, code)
    if service is None:
        raise NotFound()
    for name, value in fields.items():
        setattr(service, name, value)
    _commit_or_conflict()
    return service


def create_offering(centre_id: str, **fields: Any) -> Offering:
    """Offer a service at a centre."""
    get_centre(centre_id)
    get_service(fields["service_code"])
    offering = Offering(centre_id=centre_id, **fields)
    db.session.add(offering)
    _commit_or_conflict()
    schedule_changed.send(centre_id, offering_id=offering.id)
    return offering


def update_offering(offering_id: int, **fields: Any) -> Offering:
    """Change an offering; a new slot shape or hours regenerate its future free slots."""
    offering = db.session.get(Offering, offering_id)
    if offering is None:
        raise NotFound()
    for name, value in fields.items():
        setattr(offering, name, value)
    _commit_or_conflict()
    schedule_changed.send(offering.centre_id, offering_id=offering.id)
    return offering
