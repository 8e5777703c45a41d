"""Availability: the bookable slots of an offering, answered as ready-made JSON (the busiest read).

The answer comes from one Core statement, built once per process, whose due-seat count reads only the
bookings that can still hold a seat (a partial index: flat however many cancelled bookings pile up). It is
written without marshmallow (`AvailableSlotSchema` documents it, and a test holds the two to the same
bytes) from each slot's JSON as this process first wrote it, and then kept in Redis for
AVAILABILITY_CACHE_SECONDS.

Why a cache that can be stale: every seat is taken by a conditional UPDATE when a slot is held, which
re-checks capacity, the cut-off and the horizon in the database. An answer at most a couple of seconds
old can therefore show a seat that has just gone (the hold answers `slot_full`) or miss one just freed,
but can never sell one that is not there. 0 turns the cache off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple

import redis
from flask import current_app
from psycopg import postgres, pq
from sqlalchemy import BigInteger, Date, and_, bindparam, case, event, func, or_, select, text, type_coerce

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Centre, Offering, Service
from app.database import UTCDateTime
from app.errors import NotFound
from app.extensions import db
from app.redis_client import get_redis
from booking.draws import keeps_off_sale
from booking.errors import OutsideHorizon
from booking.horizon import earliest_start, latest_start
from booking.localtime import local_iso, zone
from booking.models import SEAT_RELEASABLE, Booking, Slot
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


class _Slot(NamedTuple):
    """What a process keeps of a slot it has answered: its instants as the query gives them (to tell
    whether they are still the same), as datetimes, its local day, and its JSON after `"available":N,`."""

    slot_id: int
    start_read: Any
    end_read: Any
    start: dt.datetime
    end: dt.datetime
    day: dt.date
    json_tail: str


class _Found(NamedTuple):
    """The bookable slots of one search, in order, with their seats left."""

    timezone: str
    slots: list[tuple[_Slot, int]]


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
    timezone, slots = _find_slots(
        centre_id=centre_id,
        service_code=service_code,
        date_from=date_from,
        date_to=date_to,
        account_id=account_id,
        horizon=horizon,
        limit=limit,
    )
    return [AvailableSlot(s.slot_id, s.start, s.end, available, timezone) for s, available in slots]


def _find_slots(
    *,
    centre_id: str,
    service_code: str,
    date_from: dt.date | None,
    date_to: dt.date | None,
    account_id: int | None,
    horizon: Horizon | None,
    limit: int,
    autocommit: bool = False,
) -> _Found:
    """The one query of a search (a statement built once per process), and the refusals it implies."""
    now = clock.now()
    resident_latest = latest_start(now, expatriate=False)
    expat_latest = latest_start(now, expatriate=True)
    params: dict[str, Any] = {
        "centre_id": centre_id,
        "service_code": service_code,
        "now": now,
        "earliest": earliest_start(now),
        "date_from": date_from,
        "date_to": date_to,
    }
    account_horizon = horizon is None and account_id is not None
    if account_horizon:
        params.update(account_id=account_id, resident_latest=resident_latest, expat_latest=expat_latest)
    else:
        params["latest"] = expat_latest if horizon == "expatriate" else resident_latest
    with _search_connection(autocommit=autocommit) as connection:
        dialect = connection.dialect.name
        if dialect == "postgresql":
            _read_instants_as_integers(connection.engine)
        statement = _statement(dialect, date_from is not None, date_to is not None, account_horizon, limit)
        rows = connection.execute(statement, params).all()
    if not rows:
        raise NotFound()
    timezone, horizon_days = rows[0][:2]
    # The offering's own horizon, when it has one, shortens everyone's (starts come in order).
    offering_latest = now + dt.timedelta(days=horizon_days) if horizon_days else None
    known = _known_slots(timezone)
    slots = []
    for _, _, slot_id, start, end, available in rows:
        if slot_id is None:
            break
        kept = known.get(slot_id)
        if kept is None or kept.start_read != start or kept.end_read != end:
            kept = known[slot_id] = _keep(slot_id, start, end, timezone)
        if offering_latest is not None and kept.start > offering_latest:
            break
        slots.append((kept, available))
    if not slots and date_from is not None:
        if horizon is None and account_id is not None:
            horizon = _horizon_of(account_id)
        latest_search = resident_latest if horizon != "expatriate" else expat_latest
        if offering_latest is not None:
            latest_search = min(latest_search, offering_latest)
        if date_from > latest_search.astimezone(zone(timezone)).date():
            raise OutsideHorizon(details={"reason": "horizon", "latest": local_iso(latest_search, timezone)})
    return _Found(timezone, slots)


@contextmanager
def _search_connection(*, autocommit: bool) -> Iterator[Any]:
    """Where the search runs: the session's connection (it sees what the session has written), or, for an
    answer to a request whose session has begun nothing, a pooled connection of its own in autocommit on
    PostgreSQL. A search is one statement, its own snapshot: BEGIN and ROLLBACK around it would be two
    round trips that change nothing, and the session is left as it was."""
    session = db.session()  # the request's Session itself (the scoped proxy lacks in_transaction)
    engine = session.get_bind()
    if autocommit and engine.dialect.name == "postgresql" and not session.in_transaction():
        with engine.connect() as connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")
    else:
        yield session.connection()


_statements: dict[tuple[Any, ...], Any] = {}


def _statement(dialect: str, has_from: bool, has_to: bool, account_horizon: bool, limit: int) -> Any:
    """The search's SELECT for this shape of query, built once per process (SQLAlchemy caches its SQL)."""
    shape = (dialect, has_from, has_to, account_horizon, limit)
    statement = _statements.get(shape)
    if statement is None:
        statement = _statements[shape] = _build_statement(*shape)
    return statement


def _build_statement(dialect: str, has_from: bool, has_to: bool, account_horizon: bool, limit: int) -> Any:
    slots, offerings = Slot.__table__, Offering.__table__
    centres, catalogue = Centre.__table__, Service.__table__
    instant = UTCDateTime()
    now = bindparam("now", type_=instant)
    stale = _stale_seats(now)
    if account_horizon:
        is_expat = (
            select(Account.is_expatriate).where(Account.id == bindparam("account_id")).scalar_subquery()
        )
        latest: Any = case(
            (is_expat, bindparam("expat_latest", type_=instant)),
            else_=bindparam("resident_latest", type_=instant),
        )
    else:
        latest = bindparam("latest", type_=instant)
    slot_filters = [
        slots.c.offering_id == offerings.c.id,
        slots.c.open.is_(True),
        slots.c.start > bindparam("earliest", type_=instant),
        slots.c.start <= latest,
        # `capacity - booked + stale > 0`, given booked <= capacity (a constraint): the count runs only
        # for full slots here, and once more in the SELECT list for the slots answered.
        or_(slots.c.booked < slots.c.capacity, stale > 0),
        # Days a draw gives are not on first-come sale (`booking.draws.keeps_off_sale`).
        ~keeps_off_sale(offerings.c.id, slots.c.local_date).correlate(offerings, slots).exists(),
    ]
    if has_from:
        slot_filters.append(slots.c.local_date >= bindparam("date_from", type_=Date()))
    if has_to:
        slot_filters.append(slots.c.local_date <= bindparam("date_to", type_=Date()))
    start, end = slots.c.start, slots.c.end
    options = {}
    if dialect == "postgresql":  # read as integers (`_read_instants_as_integers`), not UTCDateTime
        start, end = type_coerce(start, BigInteger()), type_coerce(end, BigInteger())
        options[INTEGER_INSTANTS] = True
    return (
        select(
            centres.c.timezone,
            offerings.c.horizon_days,
            slots.c.id,
            start,
            end,
            (slots.c.capacity - slots.c.booked + stale).label("available"),
        )
        .select_from(offerings)
        .join(centres, centres.c.id == offerings.c.centre_id)
        .join(catalogue, catalogue.c.code == offerings.c.service_code)
        .outerjoin(slots, and_(*slot_filters))
        .where(
            offerings.c.centre_id == bindparam("centre_id"),
            offerings.c.service_code == bindparam("service_code"),
            offerings.c.active.is_(True),
            centres.c.active.is_(True),
            catalogue.c.active.is_(True),
        )
        .order_by(slots.c.start)
        .limit(limit)
        .execution_options(**options)
    )


def _stale_seats(now: Any) -> Any:
    """SQL: the slot's seats held by an expired hold or a cancel past its delay (free, released or not).

    Read through `ix_bookings_slot_id_releasable` (its predicate, `SEAT_RELEASABLE`, is named here as it
    is written there): only bookings that still hold a seat, at most the slot's capacity, however many
    cancelled or expired ones the slot has had.
    """
    bookings = Booking.__table__
    return (
        select(func.coalesce(func.sum(bookings.c.seats), 0))
        .where(bookings.c.slot_id == Slot.__table__.c.id, text(SEAT_RELEASABLE), due_release(now))
        .correlate(Slot.__table__)
        .scalar_subquery()
    )


def _horizon_of(account_id: int) -> Horizon:
    expatriate = db.session.scalar(select(Account.is_expatriate).where(Account.id == account_id))
    return "expatriate" if expatriate else "resident"


# --------------------------------------------------------------------------- instants on PostgreSQL

# An answer carries a thousand instants. Read as datetimes, psycopg spends ~0.4 ms of a worker's CPU per
# answer parsing them and building aware datetimes, and PostgreSQL formats each as text. The search asks
# for its rows in binary instead and reads each timestamptz as the integer it is on the wire (µs since
# 2000-01-01 UTC): both sides do less, and `_keep` turns one into a datetime only for a slot it meets
# for the first time.
INTEGER_INSTANTS = "availability_integer_instants"
POSTGRES_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_integer_instant_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def _read_instants_as_integers(engine: Any) -> None:
    """Have this engine read the rows of statements marked INTEGER_INSTANTS as above (once per engine)."""
    if engine not in _integer_instant_engines:
        event.listen(engine, "before_cursor_execute", _binary_rows_with_integer_instants)
        _integer_instant_engines.add(engine)


def _binary_rows_with_integer_instants(conn, cursor, statement, parameters, context, executemany) -> None:
    if context is None or not context.execution_options.get(INTEGER_INSTANTS):
        return
    cursor.format = pq.Format.BINARY
    int8 = cursor.adapters.get_loader(postgres.types["int8"].oid, pq.Format.BINARY)
    cursor.adapters.register_loader(postgres.types["timestamptz"].oid, int8)


def _instant(read: Any) -> dt.datetime:
    """An instant as the search read it (an integer on PostgreSQL, else UTCDateTime's) as a datetime."""
    return POSTGRES_EPOCH + dt.timedelta(microseconds=read) if isinstance(read, int) else read


# ---------------------------------------------------------------------------------- serialisation

# Per process and zone, each slot answered (`_Slot`), for as long as its instants stay what they were (a
# schedule change may move an end). Slots recur in every search of their month, so an answer is mostly
# dictionary look-ups; a zone's map is emptied when it grows past KNOWN_SLOTS_MAX.
KNOWN_SLOTS_MAX = 100_000
_known: dict[str, dict[int, _Slot]] = {}


def _known_slots(timezone: str) -> dict[int, _Slot]:
    known = _known.get(timezone)
    if known is None or len(known) > KNOWN_SLOTS_MAX:
        known = _known[timezone] = {}
    return known


def _keep(slot_id: int, start_read: Any, end_read: Any, timezone: str) -> _Slot:
    """A slot met for the first time (or whose instants changed): its local forms, written once."""
    start, end = _instant(start_read), _instant(end_read)
    tz = zone(timezone)
    local_start = start.astimezone(tz)
    # Keys sorted and no spaces, as app.json.dumps; ISO 8601 strings never need escaping.
    json_tail = (
        f'"end":"{end.astimezone(tz).isoformat()}","slot_id":{slot_id},'
        f'"start":"{local_start.isoformat()}","timezone":{json.dumps(timezone, ensure_ascii=False)}}}'
    )
    return _Slot(slot_id, start_read, end_read, start, end, local_start.date(), json_tail)


def page_json(found: _Found, per_answer: int | None = None) -> tuple[str, str]:
    """The first page of a search (at most `per_answer` slots, ending with a whole day) as
    `AvailableSlotSchema(many=True)` gives it through the app's JSON provider, and the day to search
    from next ("" if none). Written from the kept JSON of each slot: no object per slot on the way."""
    per_answer = per_answer or SLOTS_PER_ANSWER
    slots = found.slots
    next_from = ""
    if len(slots) > per_answer:
        next_day = slots[per_answer][0].day
        kept = [(s, available) for s, available in slots[:per_answer] if s.day < next_day]
        slots, next_from = kept or slots[:per_answer], next_day.isoformat()
    body = ",".join([f'{{"available":{available},{s.json_tail}' for s, available in slots])
    return f"[{body}]\n", next_from


# ------------------------------------------------------------------------------------------ cache

# Whose horizon applies is kept in Redis per block of account ids: one query answers for a thousand
# citizens, so a surge of first-time searchers does not become a surge of account lookups. A residence
# is set at registration and no endpoint changes it, and a hold re-checks the horizon in the database,
# so an hour's memory costs nothing; an id past the block's last known one (a newer account) reloads it.
# Each app also remembers the blocks it has read until their Redis copy expires, so a cached answer is
# one MGET (the answer and its refresh marker) and nothing else.
HORIZON_BLOCK = 1024
HORIZON_CACHE_SECONDS = 3600


class _Block(NamedTuple):
    upto: int
    expatriates: frozenset[int]
    until: float  # time.monotonic() at which the Redis copy expires


def _horizon_block_key(account_id: int) -> str:
    return f"{CACHE_PREFIX}expatriates:{account_id // HORIZON_BLOCK}"


def _blocks() -> dict[int, _Block]:
    """This app's memory of the horizon blocks (per app, so a test's new app starts with none)."""
    return current_app.extensions.setdefault("availability_horizon_blocks", {})


def _horizon_of_citizen(client: redis.Redis, account_id: int) -> Horizon:
    """The citizen's horizon: from this app's memory, else Redis, else the database (then both)."""
    number = account_id // HORIZON_BLOCK
    block = _blocks().get(number)
    if block is None or account_id > block.upto or time.monotonic() >= block.until:
        block = _read_horizon_block(client, account_id)
        if block is None or account_id > block.upto:
            block = _load_horizon_block(client, account_id)
        _blocks()[number] = block
    return "expatriate" if account_id in block.expatriates else "resident"


def _read_horizon_block(client: redis.Redis, account_id: int) -> _Block | None:
    """The block of `account_id` as Redis has it, if it has it."""
    key = _horizon_block_key(account_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(key)
        pipe.pttl(key)
        fields, ttl_ms = pipe.execute()
    if not fields or "upto" not in fields or ttl_ms <= 0:
        return None
    upto = int(fields.pop("upto"))
    return _Block(upto, frozenset(map(int, fields)), time.monotonic() + ttl_ms / 1000)


def _load_horizon_block(client: redis.Redis, account_id: int) -> _Block:
    """Read the block of `account_id` from the database into Redis."""
    first = account_id // HORIZON_BLOCK * HORIZON_BLOCK
    rows = db.session.execute(
        select(Account.id, Account.is_expatriate).where(
            Account.id >= first, Account.id < first + HORIZON_BLOCK
        )
    ).all()
    expatriates = frozenset(account for account, is_expat in rows if is_expat)
    upto = max((account for account, _ in rows), default=first - 1)
    fields = {"upto": upto, **dict.fromkeys(map(str, expatriates), 1)}
    key = _horizon_block_key(account_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, HORIZON_CACHE_SECONDS)
        pipe.execute()
    return _Block(upto, expatriates, time.monotonic() + HORIZON_CACHE_SECONDS)


def _answer_key(
    centre_id: str, service_code: str, date_from: dt.date | None, date_to: dt.date | None, horizon: Horizon
) -> str:
    parts = [centre_id, service_code, date_from and date_from.isoformat(), date_to and date_to.isoformat()]
    return CACHE_PREFIX + json.dumps([*parts, horizon], ensure_ascii=False, separators=(",", ":"))


def _cached_answer(
    client: redis.Redis, query: dict[str, Any], account_id: int | None, young_ms: int
) -> tuple[str | None, str, Horizon]:
    """The caller's cached answer if it may be served, with its key and the caller's horizon."""
    horizon: Horizon = "resident" if account_id is None else _horizon_of_citizen(client, account_id)
    key = _answer_key(**query, horizon=horizon)
    body, young = client.mget([key, key + ":young"])
    # Past half its life, the one request that claims the refresh recomputes; the others serve it.
    if body is not None and (young or not client.set(key + ":young", 1, nx=True, px=young_ms)):
        return body, key, horizon
    return None, key, horizon


def _answer(
    query: dict[str, Any], *, account_id: int | None = None, horizon: Horizon | None = None
) -> tuple[str, str]:
    """The first page of the search as JSON, and the day to search from next ("" if none)."""
    found = _find_slots(
        **query, account_id=account_id, horizon=horizon, limit=SLOTS_PER_ANSWER + 1, autocommit=True
    )
    return page_json(found)


def _stored(answer: tuple[str, str]) -> str:
    """An answer as the cache keeps it: the next day to search from (10 characters, or blanks), the JSON."""
    body, next_from = answer
    return f"{next_from:10}" + body


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
        return _answer(query, account_id=account_id)
    young_ms = max(1, ttl_ms // 2)
    client = get_redis()
    try:
        stored, key, horizon = _cached_answer(client, query, account_id, young_ms)
    except redis.RedisError:
        log.warning("availability cache unreachable; answering from the database", exc_info=True)
        return _answer(query, account_id=account_id)
    if stored is not None:
        return _split(stored)
    answer = _answer(query, horizon=horizon)
    stored = _stored(answer)
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.set(key, stored, px=ttl_ms)
            pipe.set(key + ":young", 1, px=young_ms)
            pipe.execute()
    except redis.RedisError:
        log.warning("availability cache unreachable; answer not kept", exc_info=True)
    return answer


def _split(stored: str | bytes) -> tuple[str, str]:
    value = stored.decode() if isinstance(stored, bytes) else stored
    return value[10:], value[:10].strip()
