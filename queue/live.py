"""The live queue in Redis: each centre's events (published after a commit, numbered, kept in a short
log for screens that resume with `Last-Event-ID`), the waiting counts the screens show (counted in the
database when Redis has none), and the server-sent events framing. This module owns the keys and the
message format; `streams.py` delivers the events to the open screens (one subscription per worker, caps)."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from sqlalchemy import bindparam, func, select

from app.extensions import db
from app.redis_client import get_redis

from .models import Ticket

log = logging.getLogger(__name__)

TICKET_CALLED = "ticket.called"
TICKET_RECALLED = "ticket.recalled"
# A ticket of several services finished one and waits in the next one's stream (same number).
TICKET_REQUEUED = "ticket.requeued"
QUEUE_UPDATED = "queue.updated"
SNAPSHOT = "snapshot"
RECONNECT_MS = 3000
# The waiting counts kept in Redis are rebuilt from the database this often (and whenever missing), so a
# change that never reached Redis (a crash between commit and update, a fix by SQL) shows for a while only.
WAITING_COUNTS_SECONDS = 30
RECOUNT_MS = 5000  # how long others wait for a recount before counting themselves
_BUILT = "_built"  # marks a hash written whole from the database (not one an increment created)
# Events kept per centre for screens that reconnect (a few minutes of a busy hall); older gaps get a snapshot.
EVENT_LOG_LENGTH = 200


def channel(centre_id: str) -> str:
    """The pub/sub channel of a centre's queue."""
    return f"centre:{centre_id}:queue"


def _message(centre_id: str, event_type: str, payload: Mapping[str, Any]) -> str:
    return json.dumps({"type": event_type, "centre_id": centre_id, **payload}, default=str)


def sequence_key(centre_id: str) -> str:
    """The counter that numbers a centre's events (the SSE `id:` a screen resumes from)."""
    return f"centre:{centre_id}:queue:seq"


def log_key(centre_id: str) -> str:
    """The list of a centre's latest events, in order, for screens resuming with `Last-Event-ID`."""
    return f"centre:{centre_id}:queue:log"


def publish(centre_id: str, event_type: str, payload: Mapping[str, Any]) -> None:
    """Publish one event (call after commit); a Redis hiccup never undoes what the database holds."""
    try:
        client = get_redis()
        client.register_script(_PUBLISH_CHANGES)(
            keys=_keys(centre_id),
            args=[channel(centre_id), EVENT_LOG_LENGTH, 1, _message(centre_id, event_type, payload)],
            client=client,
        )
    except redis.RedisError:
        log.warning("queue event not published", extra={"centre_id": centre_id, "event": event_type})


def _keys(centre_id: str) -> list[str]:
    return [waiting_key(centre_id), sequence_key(centre_id), log_key(centre_id)]


def waiting_key(centre_id: str) -> str:
    """The Redis hash of a centre's waiting tickets per service."""
    return f"centre:{centre_id}:waiting"


def _counts_of(stored: Mapping[str, str] | None) -> dict[str, int] | None:
    """Counts from a stored hash; None if it was not written whole from the database (or is gone)."""
    if not stored or _BUILT not in stored:
        return None
    counts = {code: int(value) for code, value in stored.items() if code != _BUILT}
    return {code: count for code, count in sorted(counts.items()) if count > 0}


def stored_waiting_counts(centre_id: str) -> dict[str, int] | None:
    """The waiting counts kept in Redis; None if they must be rebuilt from the database."""
    try:
        return _counts_of(get_redis().hgetall(waiting_key(centre_id)))
    except redis.RedisError:
        log.warning("waiting counts not read", extra={"centre_id": centre_id})
        return None


def store_waiting_counts(centre_id: str, counts: Mapping[str, int]) -> None:
    """Replace a centre's waiting counts with figures just counted in the database."""
    key = waiting_key(centre_id)
    try:
        with get_redis().pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={**counts, _BUILT: int(time.time())})
            pipe.expire(key, WAITING_COUNTS_SECONDS)
            pipe.execute()
    except redis.RedisError:
        log.warning("waiting counts not stored", extra={"centre_id": centre_id})


@functools.cache
def _counts_statement():
    return (
        select(Ticket.service_code, func.count())
        .where(Ticket.centre_id == bindparam("centre_id"), Ticket.status == "waiting")
        .group_by(Ticket.service_code)
    )


def _count_waiting(centre_id: str) -> dict[str, int]:
    """Waiting tickets per service at a centre, counted in the database (reads every waiting ticket)."""
    rows = db.session.execute(_counts_statement(), {"centre_id": centre_id})
    return {code: count for code, count in rows}


def recount_waiting(centre_id: str) -> dict[str, int]:
    """The database's counts, read after a commit in a transaction of their own."""
    try:
        return _count_waiting(centre_id)
    finally:
        db.session.rollback()


def waiting_counts(*, centre_id: str) -> dict[str, int]:
    """Waiting tickets per service at a centre, as the screens show them.

    Kept in Redis and moved by each change after its commit (counting 40,000 waiting tickets on every
    call is what made call-next slow); counted in the database again when Redis has none, which is at
    least every `WAITING_COUNTS_SECONDS`.
    """
    counts = stored_waiting_counts(centre_id)
    if counts is None:
        counts = _count_waiting(centre_id)
        store_waiting_counts(centre_id, counts)
    return counts


# After a commit, in one round trip: publish the change's events, move the waiting counts by the change and
# publish them (`queue.updated`). Every event is numbered from the centre's counter (`"id"` first in its
# JSON, the SSE `id:`) and appended to the centre's event log. Returns 0, publishing no counts, if the hash
# was not written whole from the database (expired, or never built). KEYS: the counts hash, the counter,
# the log. ARGV: the channel, the log's length, the number n of events, the n events (JSON objects), then
# (for the counts) the message's text before and after them, and (service, change) pairs. Counts are
# written as json.dumps would: sorted, ", " and ": ".
_PUBLISH_CHANGES = """
local channel, keep, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function emit(message)
  local id = redis.call('INCR', KEYS[2])
  local numbered = '{"id": ' .. id .. ', ' .. string.sub(message, 2)
  redis.call('PUBLISH', channel, numbered)
  redis.call('RPUSH', KEYS[3], numbered)
  redis.call('LTRIM', KEYS[3], -keep, -1)
  redis.call('EXPIRE', KEYS[3], 86400)
end
for i = 4, 3 + n do emit(ARGV[i]) end
local before, after = ARGV[4 + n], ARGV[5 + n]
if before == nil then return 1 end
for i = 6 + n, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
local stored = redis.call('HGETALL', KEYS[1])
local built, codes, counts = false, {}, {}
for i = 1, #stored, 2 do
  local code, count = stored[i], tonumber(stored[i + 1])
  if code == '_built' then
    built = true
  elseif count > 0 then
    codes[#codes + 1] = code
    counts[code] = count
  end
end
if not built then return 0 end
table.sort(codes)
local parts = {}
for i, code in ipairs(codes) do parts[i] = cjson.encode(code) .. ': ' .. counts[code] end
emit(before .. '{' .. table.concat(parts, ', ') .. '}' .. after)
return 1
"""


def publish_changes(
    centre_id: str,
    changes: Iterable[tuple[str, Mapping[str, Any]]],
    waiting_delta: Mapping[str, int] | None,
    *,
    recount: Callable[[], dict[str, int]],
    at: str,
) -> None:
    """After a commit: publish the events, apply the change of waiting tickets per service and publish
    the counts (`queue.updated`), in one round trip. `recount` counts in the database when Redis has no
    counts to update. A Redis hiccup never undoes what the database holds."""
    messages = [_message(centre_id, event_type, payload) for event_type, payload in changes]
    if not messages and waiting_delta is None:
        return
    args: list[str | int] = [channel(centre_id), EVENT_LOG_LENGTH, len(messages), *messages]
    if waiting_delta is not None:
        before = f'{{"type": {json.dumps(QUEUE_UPDATED)}, "centre_id": {json.dumps(centre_id)}, "waiting": '
        args += [before, f', "at": {json.dumps(at)}}}']
        for code, change in waiting_delta.items():
            if change:
                args += [code, change]
    try:
        client = get_redis()
        published = client.register_script(_PUBLISH_CHANGES)(keys=_keys(centre_id), args=args, client=client)
    except redis.RedisError:
        log.warning("queue events not published", extra={"centre_id": centre_id})
        return
    if waiting_delta is None or published:
        return
    # The counts expired (or were lost): one of the changes arriving now counts again, the others leave it
    # the publishing (every change at a busy centre would count 40,000 tickets at the same moment).
    recounting = f"{waiting_key(centre_id)}:recounting"
    try:
        if not client.set(recounting, 1, nx=True, px=RECOUNT_MS):
            return
    except redis.RedisError:
        return
    counts = recount()
    store_waiting_counts(centre_id, counts)
    publish(centre_id, QUEUE_UPDATED, {"waiting": counts, "at": at})
    try:
        client.delete(recounting)
    except redis.RedisError:
        log.info("recount flag left to expire", extra={"centre_id": centre_id})


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One server-sent event: `id:` (when numbered), `event:` and a single-line JSON `data:`."""
    body = data if isinstance(data, str) else json.dumps(data, default=str, ensure_ascii=False)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {body}\n\n"


def parse_event(data: str) -> tuple[int | None, str] | None:
    """(id, type) of a published event, or None if it is not one of ours."""
    try:
        event = json.loads(data)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    event_id = event.get("id")
    return (event_id if isinstance(event_id, int) else None), str(event.get("type", "message"))


def current_event_id(centre_id: str) -> int | None:
    """The id of the centre's latest event (a snapshot built after reading it includes it), if known."""
    try:
        value = get_redis().get(sequence_key(centre_id))
    except redis.RedisError:
        return None
    return int(value) if value is not None else 0


def events_since(centre_id: str, last_id: int) -> list[str] | None:
    """The events after `last_id` in order, or None when the log no longer reaches back that far."""
    try:
        current, logged = (
            get_redis()
            .pipeline(transaction=False)
            .get(sequence_key(centre_id))
            .lrange(log_key(centre_id), 0, -1)
            .execute()
        )
    except redis.RedisError:
        return None
    current = int(current) if current is not None else 0
    if last_id > current:  # an id from before the counter was lost: it cannot be trusted
        return None
    if last_id == current:
        return []
    numbered = [(parse_event(data), data) for data in logged]
    ids = [parsed[0] for parsed, _ in numbered if parsed and parsed[0] is not None]
    if not ids or ids[0] > last_id + 1:
        return None
    return [data for parsed, data in numbered if parsed and parsed[0] is not None and parsed[0] > last_id]
