"""Live queue events: Redis pub/sub per centre, and their server-sent-events framing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import redis

from app.redis_client import get_redis

log = logging.getLogger(__name__)

TICKET_CALLED = "ticket.called"
TICKET_RECALLED = "ticket.recalled"
QUEUE_UPDATED = "queue.updated"
SNAPSHOT = "snapshot"
RECONNECT_MS = 3000


def channel(centre_id: str) -> str:
    """The pub/sub channel of a centre's queue."""
    return f"centre:{centre_id}:queue"


def publish(centre_id: str, event_type: str, payload: Mapping[str, Any]) -> None:
    """Publish one event (call after commit); a Redis hiccup never undoes what the database holds."""
    message = json.dumps({"type": event_type, "centre_id": centre_id, **payload}, default=str)
    try:
        get_redis().publish(channel(centre_id), message)
    except redis.RedisError:
        log.warning("queue event not published", extra={"centre_id": centre_id, "event": event_type})


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
