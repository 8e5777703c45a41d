"""The sold-out gate: a slot seen full is refused from Redis for a moment, without PostgreSQL.

On release day almost every `POST /bookings` asks for a seat that is gone. The database refuses those
with a read (`hold_slot`'s fast path), but a read per refusal still costs a connection and a few round
trips each. When that read finds a slot full with nothing due for release, the gate remembers it in
Redis (`seatgate:{slot}`) for at most SEAT_GATE_MS, and never beyond the moment a held or cancelled seat
of that slot would fall due. Until then a hold on the slot is answered `slot_full` from Redis alone.

The gate only ever refuses; it never grants a seat. PostgreSQL stays the one authority (the conditional
seat UPDATE), so a lost, stale or flushed gate key can delay a freed seat by at most SEAT_GATE_MS but can
never oversell one. Code that frees seats opens the gate at once after its commit (`reopen`). When Redis
is unreachable the gate stays open and the database answers, as before.
"""

from __future__ import annotations

import datetime as dt
import logging

import redis
from flask import current_app

from app import clock
from app.redis_client import get_redis

log = logging.getLogger(__name__)

KEY = "seatgate:{slot_id}"


def _ttl_ms() -> int:
    return int(current_app.config["SEAT_GATE_MS"])


def _epoch_ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def is_closed(slot_id: int) -> bool:
    """True when the slot was seen full a moment ago: refuse without asking the database."""
    if _ttl_ms() <= 0:
        return False
    try:
        until = get_redis().get(KEY.format(slot_id=slot_id))
    except redis.RedisError:
        log.warning("seat gate unreachable: asking the database", exc_info=True)
        return False
    # The key holds its deadline on the app's clock too, so a clock moved forward (tests, a corrected
    # host clock) opens the gate as surely as Redis' own expiry does.
    return until is not None and int(until) > _epoch_ms(clock.now())


def close(slot_id: int, *, now: dt.datetime, next_release: dt.datetime | None) -> None:
    """Remember a full slot until SEAT_GATE_MS passes or its next seat falls due, whichever is first."""
    ttl = _ttl_ms()
    if next_release is not None:
        ttl = min(ttl, int((next_release - now).total_seconds() * 1000))
    if ttl <= 0:
        return
    try:
        get_redis().set(KEY.format(slot_id=slot_id), str(_epoch_ms(now) + ttl), px=ttl)
    except redis.RedisError:
        log.warning("seat gate unreachable: not closing slot %s", slot_id, exc_info=True)


def reopen(*slot_ids: int | None) -> None:
    """Seats of these slots were freed and committed: let the next hold ask the database."""
    keys = [KEY.format(slot_id=s) for s in slot_ids if s is not None]
    if not keys or _ttl_ms() <= 0:
        return
    try:
        get_redis().delete(*keys)
    except redis.RedisError:  # the key expires by itself within SEAT_GATE_MS
        log.warning("seat gate unreachable: slots %s reopen when their keys expire", keys, exc_info=True)
