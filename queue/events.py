"""Live queue events: Redis pub/sub per centre, the waiting counts the screens show, and the
server-sent-events framing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import redis

from app.redis_client import get_redis

log = logging.getLogger(__name__)

TICKET_CALLED = "ticket.called"
TICKET_RECALLED = "ticket.recalled"
QUEUE_UPDATED = "queue.updated"
SNAPSHOT = "snapshot"
RECONNECT_MS = 3000
# The waiting counts kept in Redis are rebuilt from the database this often (and whenever missing), so a
# change that never reached Redis (a crash between commit and update, a fix by SQL) shows for a while only.
WAITING_COUNTS_SECONDS = 30
RECOUNT_MS = 5000  # how long others wait for a recount before counting themselves
_BUILT = "_built"  # marks a hash written whole from the database (not one an increment created)


def channel(centre_id: str) -> str:
    """The pub/sub channel of a centre's queue."""
    return f"centre:{centre_id}:queue"


def _message(centre_id: str, event_type: str, payload: Mapping[str, Any]) -> str:
    return json.dumps({"type": event_type, "centre_id": centre_id, **payload}, default=str)


def publish(centre_id: str, event_type: str, payload: Mapping[str, Any]) -> None:
    """Publish one event (call after commit); a Redis hiccup never undoes what the database holds."""
    try:
        get_redis().publish(channel(centre_id), _message(centre_id, event_type, payload))
    except redis.RedisError:
        log.warning("queue event not published", extra={"centre_id": centre_id, "event": event_type})


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


# After a commit, in one round trip: publish the change's events, move the waiting counts by the change and
# publish them (`queue.updated`). Returns 0, publishing no counts, if the hash was not written whole from
# the database (expired, or never built). KEYS[1]: the counts hash. ARGV: the channel, the number n of
# events, the n events, then (for the counts) the message's text before and after them, and
# (service, change) pairs. Counts are written as json.dumps would: sorted, ", " and ": ".
_PUBLISH_CHANGES = """
local channel, n = ARGV[1], tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('PUBLISH', channel, ARGV[i]) end
local before, after = ARGV[3 + n], ARGV[4 + n]
if before == nil then return 1 end
for i = 5 + n, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
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
redis.call('PUBLISH', channel, before .. '{' .. table.concat(parts, ', ') .. '}' .. after)
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
    args: list[str | int] = [channel(centre_id), len(messages), *messages]
    if waiting_delta is not None:
        before = f'{{"type": {json.dumps(QUEUE_UPDATED)}, "centre_id": {json.dumps(centre_id)}, "waiting": '
        args += [before, f', "at": {json.dumps(at)}}}']
        for code, change in waiting_delta.items():
            if change:
                args += [code, change]
    try:
        client = get_redis()
        published = client.register_script(_PUBLISH_CHANGES)(
            keys=[waiting_key(centre_id)], args=args, client=client
        )
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


def sse(event: str, data: Any) -> str:
    """One server-sent event: `event:` line and a single-line JSON `data:`."""
    body = data if isinstance(data, str) else json.dumps(data, default=str, ensure_ascii=False)
    return f"event: {event}\ndata: {body}\n\n"


def stream_events(
    pubsub: redis.client.PubSub,
    snapshot: Mapping[str, Any],
    *,
    keepalive_seconds: float,
    max_seconds: float | None = None,
) -> Iterator[str]:
    """Yield the snapshot, then each published event, with a keep-alive comment while quiet.

    The caller subscribes `pubsub` before building the snapshot, so no event falls between the two.
    After `max_seconds` the stream ends: the screen reconnects by itself and starts from a fresh
    snapshot, so long-lived connections move across restarted workers and load-balancer timeouts.
    """
    started = time.monotonic()
    try:
        yield f"retry: {RECONNECT_MS}\n" + sse(SNAPSHOT, snapshot)
        quiet_since = time.monotonic()
        while max_seconds is None or time.monotonic() - started < max_seconds:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message and message.get("type") == "message":
                data = message["data"]
                try:
                    event = json.loads(data).get("type", "message")
                except (ValueError, AttributeError):
                    continue
                yield sse(event, data)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= keepalive_seconds:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
    finally:
        try:
            pubsub.close()
        except redis.RedisError:  # the stream ends either way
            log.info("pubsub close failed", exc_info=True)
