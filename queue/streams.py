"""Display streams that cannot take the API down: one Redis subscription per worker, and caps.

Each worker process holds ONE pattern subscription to every centre's channel and fans the events out to
its open screens (a queue per screen), instead of one Redis connection per screen. The listener is a
thread: a greenlet under gunicorn's gevent workers (monkey-patched), a real thread under the dev server.

Caps (configuration): anonymous screens per address and in total across workers (Redis sorted sets of
leases that the workers renew, so a killed worker's screens lapse by themselves), and all screens per
worker (memory). Over a cap the stream is refused at once: 429 (this address) or 503 (full). A display
token (`flask --app wsgi display-token CENTRE_ID`) is exempt from the per-address and anonymous caps.
With Redis down the caps are counted per worker only (so at most workers × the cap) and the screens get
keep-alives until the subscription is back; then every screen is ended, to reconnect with
`Last-Event-ID` and get what it missed (or a fresh snapshot).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue as stdlib_queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask
from flask_babel import lazy_gettext as _l

from app.errors import AppError

from . import live

log = logging.getLogger(__name__)

PATTERN = "centre:*:queue"
LEASE_SECONDS = 60  # a screen's place in the cross-worker count lapses unless its worker renews it
RENEW_SECONDS = 20
SCREEN_BUFFER = 256  # events a slow screen may fall behind before it is ended (and resumes)
# How long a worker remembers that Redis refused an address (or every anonymous screen) across workers, so
# that the gate (gate.py) refuses the next ones from memory; after that one request at a time asks Redis
# again, so a place freed in another worker is seen at most this late (Flask's check, in Redis, stays exact).
REFUSAL_MEMORY_SECONDS = 2.0
_END = object()


class StreamsFromAddress(AppError):
    status = 429
    code = "rate_limited"
    message = _l("Too many live screens from this address. Use a display token, or try again later.")


class StreamsFull(AppError):
    status = 503
    code = "unavailable"
    message = _l("Too many live screens are open. Try again in a moment.")


def _from_address() -> StreamsFromAddress:
    return StreamsFromAddress(headers={"Retry-After": "60"}, details={"reason": "per_address"})


def _full(reason: str) -> StreamsFull:
    return StreamsFull(headers={"Retry-After": "30"}, details={"reason": reason})


# Open a screen's place under the cross-worker caps, or say which cap it would pass.
# KEYS: the anonymous set, the address set. ARGV: now, lease expiry, member, max anonymous, max per address.
_OPEN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('EXPIRE', KEYS[2], 3600)
return 0
"""
ANONYMOUS_KEY = "streams:anonymous"


def _address_key(address: str) -> str:
    return f"streams:address:{address}"


@dataclass(eq=False)
class Screen:
    """One open stream: its events arrive in `inbox`, in order."""

    centre_id: str
    address: str
    exempt: bool
    member: str
    inbox: stdlib_queue.Queue = field(default_factory=lambda: stdlib_queue.Queue(maxsize=SCREEN_BUFFER))
    counted_in_redis: bool = False

    def deliver(self, item: Any) -> None:
        try:
            self.inbox.put_nowait(item)
        except stdlib_queue.Full:  # too slow: end it, it resumes from its last id
            with contextlib.suppress(stdlib_queue.Empty):
                self.inbox.get_nowait()
            with contextlib.suppress(stdlib_queue.Full):
                self.inbox.put_nowait(_END)


class StreamHub:
    """The worker's one subscription and its screens."""

    def __init__(self, client: redis.Redis, config: Mapping[str, Any]) -> None:
        self.client = client
        self.per_address = int(config["QUEUE_STREAMS_PER_ADDRESS"])
        self.anonymous_max = int(config["QUEUE_STREAMS_ANONYMOUS_MAX"])
        self.per_worker = int(config["QUEUE_STREAMS_PER_WORKER"])
        self.worker = uuid.uuid4().hex[:12]
        self.pid = os.getpid()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._screens: dict[str, set[Screen]] = {}
        self._by_address: dict[str, int] = {}
        self._count = 0
        self._refused_until: dict[str, float] = {}  # address (or ANONYMOUS_KEY) → monotonic time
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._open_script = client.register_script(_OPEN)

    # ------------------------------------------------------------------ screens
    def open(self, centre_id: str, address: str, *, exempt: bool) -> Screen:
        """Count a new screen in (or refuse it at once) and start receiving its centre's events."""
        self._ensure_listener()
        screen = Screen(centre_id, address, exempt, f"{self.worker}:{next(self._numbers)}")
        with self._lock:
            if self._count >= self.per_worker:
                raise _full("worker_full")
            if not exempt and self._by_address.get(address, 0) >= self.per_address:
                raise _from_address()
            self._count += 1
            if not exempt:
                self._by_address[address] = self._by_address.get(address, 0) + 1
            self._screens.setdefault(centre_id, set()).add(screen)
        if not exempt:
            try:
                self._count_in_redis(screen)
            except AppError:
                self._forget(screen)
                raise
        return screen

    def refusal_from_memory(
        self, address: str, *, arriving_from_address: int = 0, arriving: int = 0
    ) -> AppError | None:
        """The refusal an anonymous screen from `address` would get, from this worker's memory alone.

        No Redis, no lock: the gate asks this before Flask. Its screens plus those still `arriving` (inside
        Flask, not yet open), and what Redis answered across workers (with 2 workers no worker alone holds
        an address's cap): refused there in the last REFUSAL_MEMORY_SECONDS → refused here; refused before
        that, and no place seen freed since → one request at a time goes on to ask Redis again.
        """
        if self._count + arriving >= self.per_worker:
            return _full("worker_full")
        if self._by_address.get(address, 0) + arriving_from_address >= self.per_address:
            return _from_address()
        now = time.monotonic()
        until = self._refused_until.get(address)
        if until is not None and (until > now or arriving_from_address):
            return _from_address()
        until = self._refused_until.get(ANONYMOUS_KEY)
        if until is not None and (until > now or arriving):
            return _full("anonymous_full")
        return None

    def _count_in_redis(self, screen: Screen) -> None:
        now = time.time()
        try:
            refused = self._open_script(
                keys=[ANONYMOUS_KEY, _address_key(screen.address)],
                args=[now, now + LEASE_SECONDS, screen.member, self.anonymous_max, self.per_address],
                client=self.client,
            )
        except redis.RedisError:  # counted in this worker only until Redis is back
            log.warning("stream caps counted per worker: Redis unreachable")
            return
        if refused:
            self._remember_refusal(ANONYMOUS_KEY if refused == 2 else screen.address)
        if refused == 1:
            raise _from_address()
        if refused == 2:
            raise _full("anonymous_full")
        screen.counted_in_redis = True
        self._refused_until.pop(screen.address, None)  # there was room, for this address and in all
        self._refused_until.pop(ANONYMOUS_KEY, None)

    def _remember_refusal(self, key: str) -> None:
        now = time.monotonic()
        if len(self._refused_until) > 10_000:  # a flood from many addresses must not grow it for ever
            for key_seen, until in list(self._refused_until.items()):
                if until <= now:
                    self._refused_until.pop(key_seen, None)
        self._refused_until[key] = now + REFUSAL_MEMORY_SECONDS

    def close(self, screen: Screen) -> None:
        """The screen went away: free its places."""
        if not self._forget(screen):
            return
        if screen.counted_in_redis:
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.zrem(ANONYMOUS_KEY, screen.member)
                    pipe.zrem(_address_key(screen.address), screen.member)
                    pipe.execute()
            except redis.RedisError:
                log.info("stream place left to lapse", extra={"member": screen.member})

    def _forget(self, screen: Screen) -> bool:
        with self._lock:
            screens = self._screens.get(screen.centre_id)
            if screens is None or screen not in screens:
                return False
            screens.discard(screen)
            if not screens:
                del self._screens[screen.centre_id]
            self._count -= 1
            if screen.counted_in_redis:  # a place is free again across workers
                self._refused_until.pop(screen.address, None)
                self._refused_until.pop(ANONYMOUS_KEY, None)
            if not screen.exempt:
                left = self._by_address.get(screen.address, 1) - 1
                if left > 0:
                    self._by_address[screen.address] = left
                else:
                    self._by_address.pop(screen.address, None)
            return True

    def open_count(self) -> int:
        with self._lock:
            return self._count

    # ------------------------------------------------------------------ the one subscription
    def _ensure_listener(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._listen, name="queue-stream-hub", daemon=True)
            self._thread.start()
        self.subscribed.wait(timeout=2)  # the first screen's events must not fall before the subscription

    def stop(self) -> None:
        self._stop.set()

    def _listen(self) -> None:
        backoff = 0.5
        was_lost = False
        while not self._stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(PATTERN)
                if was_lost:  # events may have been missed: every screen resumes from its last id
                    self._end_all()
                self.subscribed.set()
                backoff = 0.5
                renewed = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and message.get("type") == "pmessage":
                        self._dispatch(message["channel"], message["data"])
                    if time.monotonic() - renewed >= RENEW_SECONDS:
                        self._renew()
                        renewed = time.monotonic()
            except redis.RedisError:
                log.warning("queue stream subscription lost; retrying", exc_info=True)
                self.subscribed.clear()
                was_lost = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def _dispatch(self, channel_name: Any, data: Any) -> None:
        name = channel_name.decode() if isinstance(channel_name, bytes) else str(channel_name)
        centre_id = name.split(":", 2)[1] if name.count(":") >= 2 else ""
        text = data.decode() if isinstance(data, bytes) else str(data)
        with self._lock:
            screens = list(self._screens.get(centre_id, ()))
        for screen in screens:
            screen.deliver(text)

    def _end_all(self) -> None:
        with self._lock:
            screens = [s for group in self._screens.values() for s in group]
        for screen in screens:
            screen.deliver(_END)

    def _renew(self) -> None:
        with self._lock:
            counted = [s for group in self._screens.values() for s in group if s.counted_in_redis]
        if not counted:
            return
        expiry = time.time() + LEASE_SECONDS
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for screen in counted:
                    pipe.zadd(ANONYMOUS_KEY, {screen.member: expiry}, xx=True)
                    pipe.zadd(_address_key(screen.address), {screen.member: expiry}, xx=True)
                pipe.execute()
        except redis.RedisError:
            log.info("stream leases not renewed")


_hub_lock = threading.Lock()


def get_hub(app: Flask) -> StreamHub:
    """This worker's hub (a forked worker builds its own: threads do not survive fork)."""
    hub = app.extensions.get("queue_stream_hub")
    if hub is not None and hub.pid == os.getpid():
        return hub
    with _hub_lock:
        hub = app.extensions.get("queue_stream_hub")
        if hub is None or hub.pid != os.getpid():
            hub = StreamHub(app.extensions["redis"], app.config)
            app.extensions["queue_stream_hub"] = hub
    return hub


def stream_screen(
    hub: StreamHub,
    screen: Screen,
    first: list[str],
    *,
    after_id: int | None,
    keepalive_seconds: float,
    max_seconds: float | None,
) -> Iterator[str]:
    """Yield `first` (a snapshot or the missed events), then the screen's events, with keep-alives.

    Events numbered at or below `after_id` are already in what was sent first, so they are skipped.
    After `max_seconds` the stream ends: the screen reconnects by itself and resumes from its last id.
    """
    started = time.monotonic()
    ends_at = started + max_seconds if max_seconds is not None else None
    last_id = after_id
    try:
        yield f"retry: {live.RECONNECT_MS}\n" + "".join(first)
        quiet_since = time.monotonic()
        while ends_at is None or time.monotonic() < ends_at:
            now = time.monotonic()
            wait = keepalive_seconds - (now - quiet_since)
            if ends_at is not None:
                wait = min(wait, ends_at - now)
            try:
                item = screen.inbox.get(timeout=max(0.01, wait))
            except stdlib_queue.Empty:
                if time.monotonic() - quiet_since >= keepalive_seconds:
                    yield ": keep-alive\n\n"
                    quiet_since = time.monotonic()
                continue
            quiet_since = time.monotonic()
            if item is _END:
                return
            parsed = live.parse_event(item)
            if parsed is None:
                continue
            event_id, event_type = parsed
            if event_id is not None and last_id is not None and event_id <= last_id:
                continue
            if event_id is not None:
                last_id = event_id
            yield live.sse(event_type, item, event_id)
    finally:
        hub.close(screen)


def first_frames(
    centre_id: str, last_event_id: str | None, snapshot: Callable[[], Mapping[str, Any]]
) -> tuple[list[str], int | None]:
    """What a (re)connecting screen gets first, and the id it is then up to.

    A screen resuming with `Last-Event-ID` first gets the events it missed, when the centre's log still
    reaches back that far (so no call goes unannounced), then a fresh snapshot (so what it shows is exact
    whatever it missed); a new screen, or one from too long ago, gets the snapshot.
    """
    frames: list[str] = []
    if last_event_id is not None and last_event_id.strip().isdigit():
        missed = live.events_since(centre_id, int(last_event_id.strip()))
        for data in missed or ():
            parsed = live.parse_event(data)
            if parsed is not None:
                frames.append(live.sse(parsed[1], data, parsed[0]))
    current = live.current_event_id(centre_id)  # read before the snapshot: it includes that event
    frames.append(live.sse(live.SNAPSHOT, snapshot(), current))
    return frames, current
