"""Availability: the bookable slots of an offering, answered as ready-made JSON (the busiest read).

The answer is built without marshmallow (`AvailableSlotSchema` documents it, and a test holds the two
to the same bytes), with each instant's local ISO form memoised per zone, from one SQL query; it is then
kept in Redis for AVAILABILITY_CACHE_SECONDS.

Why a cache that can be stale: every seat is taken by a conditional UPDATE when a slot is held, which
re-checks capacity, the cut-off and the horizon in the database. An answer at most a couple of seconds
old can therefore show a seat that has just gone (the hold answers `slot_full`) or miss one just freed,
but can never sell one that is not there. 0 turns the cache off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import redis
from flask import current_app
from sqlalchemy import and_, case, func, or_, select

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Centre, Offering, Service
from app.errors import NotFound
from app.extensions import db
from app.redis_client import get_redis
from booking.draws import keeps_off_sale
from booking.errors import OutsideHorizon
from booking.horizon import earliest_start, latest_start
from booking.localtime import local_iso, zone
from booking.models import Booking, Slot
from booking.seats import due_release

log = logging.getLogger(__name__)

Horizon = Literal["resident", "expatriate"]
CACHE_PREFIX = "availability:v2:"
MAX_SLOTS = 5000
# One answer holds at most this many slots, cut at the end of a day; `X-Next-From` names the day to ask
# from next. A day never has more (5-minute slots around the clock are 288), so a cut never splits one.
SLOTS_PER_ANSWER = 500
NEXT_FROM_HEADER = "X-Next-From"


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
    limit: int = MAX_SLOTS,
) -> list[AvailableSlot]:
    """Bookable slots with seats left, inside the cut-off and the caller's horizon: one SQL query.

    The horizon is the citizen `account_id`'s (looked up in the same query), or `horizon` when the
    caller already knows it. A `date_from` past the horizon is refused (`outside_horizon`), not answered
    with nothing.
    """
    now = clock.now()
    earliest = earliest_start(now)
    resident_latest = latest_start(now, expatriate=False)
    expat_latest = latest_start(now, expatriate=True)
    stale = _stale_seats(now)
    latest = _latest_start_sql(resident_latest, expat_latest, horizon=horizon, account_id=account_id)
    slot_filters = [
        Slot.offering_id == Offering.id,
        Slot.open.is_(True),
        Slot.start > earliest,
        Slot.start <= latest,
        # `capacity - booked + stale > 0`, given booked <= capacity (a constraint): the count runs only
        # for full slots here, and once more in the SELECT list for the slots answered.
        or_(Slot.booked < Slot.capacity, stale > 0),
        # Days a draw gives are not on first-come sale (`booking.draws.keeps_off_sale`).
        ~keeps_off_sale(Offering.id, Slot.local_date).correlate(Offering, Slot).exists(),
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
        .limit(limit)
    )
    rows = db.session.execute(query).all()
    if not rows:
        raise NotFound()
    timezone, horizon_days = rows[0][:2]
    # The offering's own horizon, when it has one, shortens everyone's.
    offering_latest = (
        now + dt.timedelta(days=horizon_days) if horizon_days else dt.datetime.max.replace(tzinfo=dt.UTC)
    )
    slots = [
        AvailableSlot(slot_id, start, end, int(available), timezone)
        for _, _, slot_id, start, end, available in rows
        if slot_id is not None and start <= offering_latest
    ]
    if not slots and date_from is not None:
        if horizon is None and account_id is not None:
            horizon = _horizon_of(account_id)
        latest_search = min(expat_latest if horizon == "expatriate" else resident_latest, offering_latest)
        if date_from > latest_search.astimezone(zone(timezone)).date():
            raise OutsideHorizon(details={"reason": "horizon", "latest": local_iso(latest_search, timezone)})
    return slots


def _stale_seats(now: dt.datetime) -> Any:
    """SQL: the slot's seats held by an expired hold or a cancel past its delay (free, released or not)."""
    return (
        select(func.coalesce(func.sum(Booking.seats), 0))
        .where(Booking.slot_id == Slot.id, due_release(now))
        .correlate(Slot)
        .scalar_subquery()
    )


def _latest_start_sql(
    resident_latest: dt.datetime,
    expat_latest: dt.datetime,
    *,
    horizon: Horizon | None,
    account_id: int | None,
) -> Any:
    """The caller's last bookable start: known, or the citizen's looked up in the same query."""
    if horizon is not None:
        return expat_latest if horizon == "expatriate" else resident_latest
    if account_id is not None:
        is_expat = select(Account.is_expatriate).where(Account.id == account_id).scalar_subquery()
        return case((is_expat, expat_latest), else_=resident_latest)
    return resident_latest


def _horizon_of(account_id: int) -> Horizon:
    expatriate = db.session.scalar(select(Account.is_expatriate).where(Account.id == account_id))
    return "expatriate" if expatriate else "resident"


def first_page(slots: list[AvailableSlot], per_answer: int | None = None) -> tuple[list[AvailableSlot], str]:
    """At most `per_answer` slots, ending with a whole day, and the day to search from next ("" if none)."""
    per_answer = per_answer or SLOTS_PER_ANSWER
    if len(slots) <= per_answer:
        return slots, ""
    next_day = slots[per_answer].start.astimezone(zone(slots[per_answer].timezone)).date()
    kept = [s for s in slots[:per_answer] if s.start.astimezone(zone(s.timezone)).date() < next_day]
    return kept or slots[:per_answer], next_day.isoformat()


# ---------------------------------------------------------------------------------- serialisation


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


# ------------------------------------------------------------------------------------------ cache

# Whose horizon applies is kept in Redis per block of account ids: one query answers for a thousand
# citizens, so a surge of first-time searchers does not become a surge of account lookups. A residence
# is set at registration and no endpoint changes it, and a hold re-checks the horizon in the database,
# so an hour's memory costs nothing; an id past the block's last known one (a newer account) reloads it.
HORIZON_BLOCK = 1024
HORIZON_CACHE_SECONDS = 3600


def _horizon_block_key(account_id: int) -> str:
    return f"{CACHE_PREFIX}expatriates:{account_id // HORIZON_BLOCK}"


def _load_horizon_block(client: redis.Redis, account_id: int) -> Horizon:
    """Read the block of `account_id` from the database into Redis; returns that account's horizon."""
    first = account_id // HORIZON_BLOCK * HORIZON_BLOCK
    rows = db.session.execute(
        select(Account.id, Account.is_expatriate).where(
            Account.id >= first, Account.id < first + HORIZON_BLOCK
        )
    ).all()
    expatriates = {account for account, is_expat in rows if is_expat}
    fields = {"upto": max((account for account, _ in rows), default=first - 1)}
    fields.update(dict.fromkeys(map(str, expatriates), 1))
    key = _horizon_block_key(account_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, HORIZON_CACHE_SECONDS)
        pipe.execute()
    return "expatriate" if account_id in expatriates else "resident"


def _answer_key(
    centre_id: str, service_code: str, date_from: dt.date | None, date_to: dt.date | None, horizon: Horizon
) -> str:
    parts = [centre_id, service_code, date_from and date_from.isoformat(), date_to and date_to.isoformat()]
    return CACHE_PREFIX + json.dumps([*parts, horizon], ensure_ascii=False, separators=(",", ":"))


def _cached_answer(
    client: redis.Redis, query: dict[str, Any], account_id: int | None, young_ms: int
) -> tuple[str | None, str, Horizon]:
    """The caller's cached answer if it may be served, with its key and the caller's horizon."""
    # Residents' answer first (most callers), with the caller's horizon: one round trip.
    key = _answer_key(**query, horizon="resident")
    with client.pipeline(transaction=False) as pipe:
        pipe.mget([key, key + ":young"])
        if account_id is not None:
            pipe.hmget(_horizon_block_key(account_id), ["upto", str(account_id)])
        (body, young), *block = pipe.execute()
    horizon: Horizon = "resident"
    if account_id is not None:
        upto, is_expat = block[0]
        if upto is None or account_id > int(upto):
            horizon = _load_horizon_block(client, account_id)
        elif is_expat:
            horizon = "expatriate"
    if horizon == "expatriate":
        key = _answer_key(**query, horizon="expatriate")
        body, young = client.mget([key, key + ":young"])
    # Past half its life, the one request that claims the refresh recomputes; the others serve it.
    if body is not None and (young or not client.set(key + ":young", 1, nx=True, px=young_ms)):
        return body, key, horizon
    return None, key, horizon


def _answer(query: dict[str, Any], **whose: Any) -> str:
    """The first page as stored in the cache: the next day to search from (10 characters, or blanks), then
    the JSON body."""
    slots, next_from = first_page(list_available_slots(**query, **whose, limit=SLOTS_PER_ANSWER + 1))
    return f"{next_from:10}" + slots_json(slots)


def available_slots_json(
    *,
    centre_id: str,
    service_code: str,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    account_id: int | None = None,
) -> tuple[str, str]:
    """The availability answer as JSON text (at most SLOTS_PER_ANSWER slots, whole days) and the day to
    search from for the rest ("" when nothing is left), from the micro-cache while it is young enough.

    An answer is kept for AVAILABILITY_CACHE_SECONDS and refreshed after half of that by the one
    request that claims the refresh (`SET NX`), while the others keep serving it: no answer is older
    than the setting, and a busy key never sends every request to the database at once.
    """
    ttl_ms = int(current_app.config["AVAILABILITY_CACHE_SECONDS"] * 1000)
    query = dict(centre_id=centre_id, service_code=service_code, date_from=date_from, date_to=date_to)
    if ttl_ms <= 0:
        return _split(_answer(query, account_id=account_id))
    young_ms = max(1, ttl_ms // 2)
    client = get_redis()
    try:
        stored, key, horizon = _cached_answer(client, query, account_id, young_ms)
    except redis.RedisError:
        log.warning("availability cache unreachable; answering from the database", exc_info=True)
        return _split(_answer(query, account_id=account_id))
    if stored is not None:
        return _split(stored)
    stored = _answer(query, horizon=horizon)
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.set(key, stored, px=ttl_ms)
            pipe.set(key + ":young", 1, px=young_ms)
            pipe.execute()
    except redis.RedisError:
        log.warning("availability cache unreachable; answer not kept", exc_info=True)
    return _split(stored)


def _split(stored: str | bytes) -> tuple[str, str]:
    text = stored.decode() if isinstance(stored, bytes) else stored
    return text[10:], text[:10].strip()
