"""The live queue stream the hall display listens to (server-sent events over Redis pub/sub)."""

from __future__ import annotations

import json
import queue
import threading

import httpx

API = "/api/v1"


def read_events(base: str, centre_id: str, sink: queue.Queue, stop: threading.Event) -> None:
    """Parse the stream into (event, data) pairs; comments (keep-alives) come through as ("comment", text)."""
    try:
        _read(base, centre_id, sink, stop)
    except httpx.HTTPError as error:  # the test is over (server gone) or the stream broke
        if not stop.is_set():
            sink.put(("error", repr(error)))


def _read(base: str, centre_id: str, sink: queue.Queue, stop: threading.Event) -> None:
    with httpx.stream("GET", f"{base}{API}/centres/{centre_id}/queue/stream", timeout=10) as response:
        sink.put(("headers", dict(response.headers)))
        event, data = None, []
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith(":"):
                sink.put(("comment", line))
            elif line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
            elif line == "" and event:
                sink.put((event, json.loads("\n".join(data))))
                event, data = None, []


def next_event(sink: queue.Queue, name: str, timeout: float = 5.0):
    while True:
        event, data = sink.get(timeout=timeout)
        if event == name:
            return data


def test_stream_sends_a_snapshot_then_calls_and_queue_updates(kit, make, live_server):
    site = kit.site()
    with httpx.Client(base_url=live_server + API, timeout=10) as api:
        api.post(f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk)
        sink: queue.Queue = queue.Queue()
        stop = threading.Event()
        listener = threading.Thread(
            target=read_events, args=(live_server, site.centre.id, sink, stop), daemon=True
        )
        listener.start()
        headers = next_event(sink, "headers")
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache" and headers["x-accel-buffering"] == "no"
        snapshot = next_event(sink, "snapshot")
        assert snapshot["waiting"] == {site.other.code: 1} and snapshot["centre_id"] == site.centre.id

        api.post(f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk)
        assert next_event(sink, "queue.updated")["waiting"] == {site.other.code: 2}

        api.post(
            f"/staff/counters/{site.counters[1]}/open",
            json={"services": [site.other.code]},
            headers=site.headers["clerk"],
        )
        called = api.post(
            f"/staff/counters/{site.counters[1]}/call-next", headers=site.headers["clerk"]
        ).json()
        event = next_event(sink, "ticket.called")
        assert event["number"] == called["number"] == "C-001"
        assert event["counter"]["number"] == 2 and event["counter"]["name_en"] == "Counter 2"
        assert next_event(sink, "queue.updated")["waiting"] == {site.other.code: 1}
        api.post(f"/staff/tickets/{called['ticket_id']}/recall", headers=site.headers["clerk"])
        assert next_event(sink, "ticket.recalled")["recall_count"] == 1
        stop.set()


def test_keep_alive_comments_while_nothing_happens(kit, make_app):
    """With a short keep-alive, a quiet stream still sends comments (proxies keep it open)."""
    from werkzeug.serving import make_server

    app = make_app(QUEUE_KEEPALIVE_SECONDS="1")
    site_kit = type(kit)(app, type(kit.make)(app))
    site = site_kit.site()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink: queue.Queue = queue.Queue()
        stop = threading.Event()
        base = f"http://127.0.0.1:{server.server_port}"
        threading.Thread(target=read_events, args=(base, site.centre.id, sink, stop), daemon=True).start()
        next_event(sink, "snapshot")
        assert next_event(sink, "comment", timeout=5) == ": keep-alive"
        stop.set()
    finally:
        server.shutdown()
        server.server_close()


def test_a_stream_does_not_hold_the_database(kit, live_server):
    """Ten open streams and the API still answers (a stream must not keep a connection or SQLite's lock)."""
    site = kit.site()
    stop = threading.Event()
    sinks = []
    for _ in range(10):
        sink: queue.Queue = queue.Queue()
        threading.Thread(
            target=read_events, args=(live_server, site.centre.id, sink, stop), daemon=True
        ).start()
        sinks.append(sink)
    for sink in sinks:
        next_event(sink, "snapshot")
    with httpx.Client(base_url=live_server + API, timeout=10) as api:
        r = api.post(
            f"/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk
        )
        assert r.status_code == 201
    for sink in sinks:
        assert next_event(sink, "queue.updated")["waiting"] == {site.other.code: 1}
    stop.set()


def test_unknown_centre_has_no_stream(client):
    assert client.get(f"{API}/centres/nowhere/queue/stream").status_code == 404
