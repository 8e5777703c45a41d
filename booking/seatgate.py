"""The sold-out gate: a slot seen full is refused from Redis for a moment, without PostgreSQL.

On release day almost every `POST /bookings` asks for a seat that is gone. The database refuses those
with a read (`hold_slot`'s fast path), but a read per refusal still costs a connection and a few round
trips each. When that read finds a slot full with nothing due for release, the gate remembers it in
Redis (`seatgate:{slot}`) for at most SEAT_GATE_MS, and never beyond the moment a held or cancelled seat
of that slot would fall due. Until then a hold on the slot is answered `slot_full` from Redis alone; after
it, one request asks the database again (see `check`) and closes the gate anew or opens it.

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
PROBE_KEY = "seatgate:{slot_id}:probe"
# Past its deadline a gate keeps refusing for up to GRACE_MS while ONE request (the probe, re-elected
# every PROBE_MS) asks the database: a release-day flood never stampedes PostgreSQL when a gate lapses.
GRACE_MS = 1000
PROBE_MS = 500
# Each process also remembers a closed gate for up to LOCAL_MS, skipping even the Redis read; a seat
# freed through another process is then seen here at most LOCAL_MS late.
LOCAL_MS = 1000
LOCAL_MAX = 100_000

OPEN, CLOSED, PROBE = "open", "closed", "probe"


def _ttl_ms() -> int:
    return int(current_app.config["SEAT_GATE_MS"])


def _epoch_ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def _local() -> dict[int, int]:
    """slot id → deadline (ms on the app's clock) this process refuses without asking Redis."""
    local = current_app.extensions.setdefault("seatgate_local", {})
    if len(local) > LOCAL_MAX:
        local.clear()
    return local


def check(slot_id: int) -> str:
    """CLOSED: refuse without the database. OPEN: ask it. PROBE: ask it, then `close` or `reopen`."""
    if _ttl_ms() <= 0:
        return OPEN
    now_ms = _epoch_ms(clock.now())
    local = _local()
    if local.get(slot_id, 0) > now_ms:
        return CLOSED
    try:
        client = get_redis()
        until = client.get(KEY.format(slot_id=slot_id))
        if until is None:
            return OPEN
        # The deadline is kept on the app's clock, so a clock moved forward (tests, a corrected host
        # clock) lapses the gate as surely as time does.
        if int(until) > now_ms:
            local[slot_id] = min(int(until), now_ms + LOCAL_MS)
            return CLOSED
        won = client.set(PROBE_KEY.format(slot_id=slot_id), "1", nx=True, px=PROBE_MS)
    except redis.RedisError:
        log.warning("seat gate unreachable: asking the database", exc_info=True)
        return OPEN
    if won:
        return PROBE
    # Another request is asking the database: refuse here without Redis until its answer is due (at most
    # PROBE_MS, within LOCAL_MS) instead of asking Redis twice more for every hold meanwhile.
    local[slot_id] = now_ms + min(PROBE_MS, LOCAL_MS)
    return CLOSED


def close(slot_id: int, *, now: dt.datetime, next_release: dt.datetime | None) -> None:
    """Remember a full slot until SEAT_GATE_MS passes or its next seat falls due, whichever is first."""
    ttl = _ttl_ms()
    if next_release is not None:
        ttl = min(ttl, int((next_release - now).total_seconds() * 1000))
    if ttl <= 0:
        return
    _local()[slot_id] = _epoch_ms(now) + min(ttl, LOCAL_MS)
    try:
        with get_redis().pipeline() as pipe:  # MULTI: the new deadline and the end of any probe together
            pipe.set(KEY.format(slot_id=slot_id), str(_epoch_ms(now) + ttl), px=ttl + GRACE_MS)
            pipe.delete(PROBE_KEY.format(slot_id=slot_id))
            pipe.execute()
    except redis.RedisError:
        log.warning("seat gate unreachable: not closing slot %s", slot_id, exc_info=True)


def reopen(*slot_ids: int | None) -> None:
    """Seats of these slots were freed and committed: let the next hold ask the database."""
    ids = [s for s in slot_ids if s is not None]
    local = _local()
    for slot_id in ids:
        local.pop(slot_id, None)
    keys = [KEY.format(slot_id=s) for s in ids] + [PROBE_KEY.format(slot_id=s) for s in ids]
    if not keys or _ttl_ms() <= 0:
        return
    try:
        get_redis().delete(*keys)
    except redis.RedisError:  # the key expires by itself within SEAT_GATE_MS
        log.warning("seat gate unreachable: slots %s reopen when their keys expire", keys, exc_info=True)
