"""Display streams are bounded: caps per address and in total (per worker and across workers), over-cap
answered at once in the envelope, one Redis subscription per worker for all its screens, display tokens
exempt from the per-address cap, and `id:` on every event so a reconnecting screen resumes."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from werkzeug.serving import make_server

from app.redis_client import get_redis
from ticketing import live, streams

API = "/api/v1"


class Served:
    """An app on a free loopback port (werkzeug, threaded), with open streams kept until `close`."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.client = httpx.Client(timeout=10)
        self.open: list = []

    def stream(self, centre_id: str, headers: dict | None = None, params: dict | None = None):
        """Open a stream; returns (status, response). A 200 stream stays open."""
        request = self.client.build_request(
            "GET", f"{self.base}{API}/centres/{centre_id}/queue/stream", headers=headers, params=params
        )
        response = self.client.send(request, stream=True)
        if response.status_code == 200:
            self.open.append(response)
        else:
            response.read()
        return response

    def close(self) -> None:
        for response in self.open:
            response.close()
        self.client.close()
        self.server.shutdown()
        self.server.server_close()


def frames(response, count: int, timeout: float = 5.0) -> list[dict]:
    """The next `count` events of an open stream as {id, event, data}, skipping comments."""
    out, current = [], {}
    deadline = time.monotonic() + timeout
    if not hasattr(response, "sse_lines"):  # a response can be iterated once: keep its iterator
        response.sse_lines = response.iter_lines()
    for line in response.sse_lines:
        if time.monotonic() > deadline:
            break
        if line.startswith(":") or line.startswith("retry:"):
            continue
        if line == "":
            if current:
                out.append(current)
                current = {}
                if len(out) == count:
                    return out
            continue
        name, _, value = line.partition(":")
        current[name] = value.strip()
    raise AssertionError(f"only {len(out)} events arrived: {out}")


@pytest.fixture
def capped(app, make_app):  # `app` empties the database and Redis first
    app = make_app(
        QUEUE_STREAMS_PER_ADDRESS="3", QUEUE_STREAMS_ANONYMOUS_MAX="5", QUEUE_KEEPALIVE_SECONDS="1"
    )
    served = Served(app)
    yield app, served
    served.close()


def _centre(app):
    from tests.factories import Make

    return Make(app).centre()


def test_over_the_per_address_cap_is_429_at_once_and_a_closed_screen_frees_its_place(capped):
    app, served = capped
    centre = _centre(app)
    for _ in range(3):
        assert served.stream(centre.id).status_code == 200
    started = time.monotonic()
    refused = served.stream(centre.id)
    assert time.monotonic() - started < 2
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"]["reason"] == "per_address"

    served.open.pop().close()
    # A keep-alive write (every second here) is what tells the server the socket is gone.
    deadline = time.monotonic() + 10
    while get_hub_count(app) > 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get_hub_count(app) == 2
    assert served.stream(centre.id).status_code == 200


def get_hub_count(app) -> int:
    hub = app.extensions.get("queue_stream_hub")
    return hub.open_count() if hub else 0


def test_a_display_token_is_exempt_from_the_per_address_cap(capped, runner_for):
    app, served = capped
    centre = _centre(app)
    other = _centre(app)
    for _ in range(3):
        served.stream(centre.id)
    token = runner_for(app).invoke(args=["display-token", centre.id]).output.strip().splitlines()[-1]
    assert token.startswith("dsp_")
    for _ in range(3):
        assert served.stream(centre.id, params={"token": token}).status_code == 200
    assert served.stream(centre.id, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    foreign = served.stream(other.id, params={"token": token})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "centre_forbidden"
    forged = served.stream(centre.id, params={"token": "dsp_forged"})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_token"


def test_the_anonymous_total_holds_across_workers(app, make_app):
    """Two workers (two hubs) share the count in Redis; a worker that dies leaves places that lapse."""
    app = make_app(QUEUE_STREAMS_PER_ADDRESS="100", QUEUE_STREAMS_ANONYMOUS_MAX="3")
    with app.app_context():
        client = get_redis()
        first, second = streams.StreamHub(client, app.config), streams.StreamHub(client, app.config)
        try:
            held = [first.open("c1", f"10.0.0.{n}", exempt=False) for n in range(2)]
            held.append(second.open("c1", "10.0.0.9", exempt=False))
            with pytest.raises(streams.StreamsFull) as full:
                second.open("c1", "10.0.0.10", exempt=False)
            assert full.value.status == 503 and full.value.headers["Retry-After"]
            assert second.open("c1", "10.0.0.10", exempt=True)  # a display is not an anonymous screen
            second.close(held[2])
            held[2] = second.open("c1", "10.0.0.11", exempt=False)
            # The first worker is killed (-9): nothing closes its screens; their leases lapse.
            client.zadd(streams.ANONYMOUS_KEY, {s.member: time.time() - 1 for s in held[:2]})
            assert second.open("c1", "10.0.0.12", exempt=False)
        finally:
            first.stop()
            second.stop()


def test_per_worker_total_holds_for_every_kind_of_screen(app, make_app):
    app = make_app(QUEUE_STREAMS_PER_WORKER="2")
    with app.app_context():
        hub = streams.StreamHub(get_redis(), app.config)
        try:
            hub.open("c1", "10.0.0.1", exempt=True)
            hub.open("c1", "10.0.0.2", exempt=False)
            with pytest.raises(streams.StreamsFull):
                hub.open("c1", "10.0.0.3", exempt=True)
        finally:
            hub.stop()


def test_one_subscription_per_worker_serves_all_its_screens(kit, make_app):
    app = make_app(QUEUE_STREAMS_PER_ADDRESS="50")
    site = type(kit)(app, type(kit.make)(app)).site()
    with app.app_context():
        client = get_redis()
    subscriptions = []
    real_pubsub = type(client).pubsub

    def counted_pubsub(self, **kwargs):
        subscriptions.append(kwargs)
        return real_pubsub(self, **kwargs)

    type(client).pubsub = counted_pubsub
    served = Served(app)
    try:
        screens = [served.stream(site.centre.id) for _ in range(8)]
        for screen in screens:
            assert frames(screen, 1)[0]["event"] == "snapshot"
        httpx.post(
            f"{served.base}{API}/centres/{site.centre.id}/tickets",
            json={"service": site.other.code},
            headers=site.kiosk,
            timeout=10,
        ).raise_for_status()
        for screen in screens:
            [update] = frames(screen, 1)
            assert update["event"] == "queue.updated" and update["id"].isdigit()
        assert len(subscriptions) == 1
    finally:
        type(client).pubsub = real_pubsub
        served.close()


def test_events_carry_ids_and_a_screen_resumes_with_last_event_id(kit, make_app):
    app = make_app()
    site = type(kit)(app, type(kit.make)(app)).site()
    served = Served(app)
    try:
        screen = served.stream(site.centre.id)
        [snapshot] = frames(screen, 1)
        assert snapshot["event"] == "snapshot" and snapshot["id"].isdigit()
        for _ in range(3):
            httpx.post(
                f"{served.base}{API}/centres/{site.centre.id}/tickets",
                json={"service": site.other.code},
                headers=site.kiosk,
                timeout=10,
            ).raise_for_status()
        seen = frames(screen, 3)
        ids = [int(f["id"]) for f in seen]
        assert ids == sorted(ids) and len(set(ids)) == 3 and ids[0] > int(snapshot["id"])

        resumed = served.stream(site.centre.id, headers={"Last-Event-ID": str(ids[0])})
        *missed, state = frames(resumed, 3)
        assert [int(f["id"]) for f in missed] == ids[1:]
        assert [f["data"] for f in missed] == [f["data"] for f in seen[1:]]
        assert state["event"] == "snapshot" and int(state["id"]) == ids[-1]  # then the exact state

        # Further back than the log reaches (or an id from a lost counter): the fresh snapshot alone.
        with app.app_context():
            get_redis().delete(live.log_key(site.centre.id))
        fresh = served.stream(site.centre.id, headers={"Last-Event-ID": "1"})
        [first] = frames(fresh, 1)
        assert first["event"] == "snapshot" and int(first["id"]) == ids[-1]
    finally:
        served.close()


@pytest.fixture
def runner_for():
    return lambda app: app.test_cli_runner()
