"""Availability: the bookable slots of an offering, answered as ready-made JSON (the busiest read).

The answer is built without marshmallow (`AvailableSlotSchema` documents it, and a test holds the two
to the same bytes), with each instant's local ISO form memoised per zone, from one SQL query.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import zoneinfo
from collections.abc import Iterable
from typing import Literal, NamedTuple

from flask import current_app
from sqlalchemy import and_, case, func, or_, select

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Centre, Offering, Service
from app.errors import NotFound
from app.extensions import db
from booking.models import Booking, Slot
from booking.services import _due_release

Horizon = Literal["resident", "expatriate"]
MAX_SLOTS = 5000


class AvailableSlot(NamedTuple):
    slot_id: int
    start: dt.datetime
    end: dt.datetime
    available: int
    timezone: str


def list_available_slots(
    *,
    centre_id: str,
    service_code: str,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    account_id: int | None = None,
    horizon: Horizon | None = None,
) -> list[AvailableSlot]:
    """Bookable slots with seats left, inside the cut-off and the caller's horizon: one SQL query.

    The horizon is the citizen `account_id`'s (looked up in the same query), or `horizon` when the
    caller already knows it.
    """
    now = clock.now()
    cfg = current_app.config
    earliest = now + dt.timedelta(minutes=cfg["BOOKING_CUTOFF_MINUTES"])
    resident_latest = now + dt.timedelta(days=cfg["RESIDENT_HORIZON_DAYS"])
    expat_latest = now + dt.timedelta(days=cfg["EXPATRIATE_HORIZON_DAYS"])
    # Seats held by an expired hold or by a cancel past its delay are free, whether or not released yet.
    stale = (
        select(func.count())
        .where(Booking.slot_id == Slot.id, _due_release(now))
        .correlate(Slot)
        .scalar_subquery()
    )
    if horizon is not None:
        latest = expat_latest if horizon == "expatriate" else resident_latest
    elif account_id is not None:
        is_expat = (
            select(func.upper(Account.residence_country) != "JO")
            .where(Account.id == account_id)
            .scalar_subquery()
        )
        latest = case((is_expat, expat_latest), else_=resident_latest)
    else:
        latest = resident_latest
    slot_filters = [
        Slot.offering_id == Offering.id,
        Slot.open.is_(True),
        Slot.start > earliest,
        Slot.start <= latest,
        # `capacity - booked + stale > 0`, given booked <= capacity (a constraint): the count runs only
        # for full slots here, and once more in the SELECT list for the slots answered.
        or_(Slot.booked < Slot.capacity, stale > 0),
    ]
    if date_from is not None:
        slot_filters.append(Slot.local_date >= date_from)
    if date_to is not None:
        slot_filters.append(Slot.local_date <= date_to)
    query = (
        select(
            Centre.timezone,
            Offering.horizon_days,
            Slot.id,
            Slot.start,
            Slot.end,
            (Slot.capacity - Slot.booked + stale).label("available"),
        )
        .select_from(Offering)
        .join(Centre, Centre.id == Offering.centre_id)
        .join(Service, Service.code == Offering.service_code)
        .outerjoin(Slot, and_(*slot_filters))
        .where(
            Offering.centre_id == centre_id,
            Offering.service_code == service_code,
            Offering.active.is_(True),
            Centre.active.is_(True),
            Service.active.is_(True),
        )
        .order_by(Slot.start)
        .limit(MAX_SLOTS)
    )
    rows = db.session.execute(query).all()
    if not rows:
        raise NotFound()
    timezone, horizon_days = rows[0][:2]
    # The offering's own horizon, when it has one, shortens everyone's.
    latest_start = (
        now + dt.timedelta(days=horizon_days) if horizon_days else dt.datetime.max.replace(tzinfo=dt.UTC)
    )
    return [
        AvailableSlot(slot_id, start, end, int(available), timezone)
        for _, _, slot_id, start, end, available in rows
        if slot_id is not None and start <= latest_start
    ]


# ---------------------------------------------------------------------------------- serialisation


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@functools.lru_cache(maxsize=32768)
def local_iso(instant: dt.datetime, timezone: str) -> str:
    """An instant as ISO 8601 with the zone's offset (memoised: the same slot times recur in every answer)."""
    return instant.astimezone(_zone(timezone)).isoformat()


def slots_json(slots: Iterable[AvailableSlot]) -> str:
    """The JSON array `AvailableSlotSchema(many=True)` would give, as the app's JSON provider writes it."""
    parts = []
    zones: dict[str, str] = {}
    for s in slots:
        zone = zones.get(s.timezone)
        if zone is None:
            zone = zones[s.timezone] = json.dumps(s.timezone, ensure_ascii=False)
        # Keys sorted and no spaces, as app.json.dumps; ISO 8601 strings never need escaping.
        parts.append(
            f'{{"available":{s.available},"end":"{local_iso(s.end, s.timezone)}",'
            f'"slot_id":{s.slot_id},"start":"{local_iso(s.start, s.timezone)}","timezone":{zone}}}'
        )
    return "[" + ",".join(parts) + "]\n"


def available_slots_json(
    *,
    centre_id: str,
    service_code: str,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    account_id: int | None = None,
) -> str:
    """The availability answer as JSON text."""
    return slots_json(
        list_available_slots(
            centre_id=centre_id,
            service_code=service_code,
            date_from=date_from,
            date_to=date_to,
            account_id=account_id,
        )
    )
