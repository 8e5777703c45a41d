"""The stream gate refuses over-cap anonymous display streams before Flask (no request, no Redis, no
database), in the envelope and language Flask would use, and lets under-cap and display-token requests
through to Flask, which checks them exactly."""

from __future__ import annotations

import pytest

from app.redis_client import get_redis
from ticketing import gate, streams

ADDRESS = "127.0.0.1"  # the test client's REMOTE_ADDR


@pytest.fixture
def gated(app, make_app):  # `app` empties the database and Redis first
    app = make_app(QUEUE_STREAMS_PER_ADDRESS="2", QUEUE_STREAMS_PER_WORKER="4", QUEUE_KEEPALIVE_SECONDS="1")
    reached = []
    app.before_request(lambda: reached.append(1))  # every request Flask handles, the gate's refusals not
    return app, reached


def _centre(app):
    from tests.factories import Make

    return Make(app).centre()


def _path(centre_id: str) -> str:
    return f"/api/v1/centres/{centre_id}/queue/stream"


def _flask_message(app, error_class, language: str) -> str:
    with app.test_request_context(headers={"Accept-Language": language}):
        return str(error_class.message)


def _hub(app) -> streams.StreamHub:
    return streams.get_hub(app)


def test_over_the_per_address_cap_is_refused_before_flask_in_both_languages(gated):
    app, reached = gated
    centre = _centre(app)
    hub = _hub(app)
    for _ in range(2):
        hub.open(centre.id, ADDRESS, exempt=False)
    client = app.test_client()
    redis_calls = _count_redis_calls(app)
    for language, error_class in (("en", streams.StreamsFromAddress), ("ar", streams.StreamsFromAddress)):
        response = client.get(_path(centre.id), headers={"Accept-Language": language})
        assert response.status_code == 429 and response.headers["Retry-After"] == "60"
        assert response.headers["Content-Type"] == "application/json"
        assert response.get_json() == {
            "error": {
                "code": "rate_limited",
                "message": _flask_message(app, error_class, language),
                "details": {"reason": "per_address"},
            }
        }
    # No Accept-Language: Arabic, as Flask answers an anonymous caller.
    arabic = client.get(_path(centre.id)).get_json()["error"]["message"]
    assert arabic == _flask_message(app, streams.StreamsFromAddress, "ar")
    assert arabic != _flask_message(app, streams.StreamsFromAddress, "en")
    assert reached == [] and redis_calls() == 0
    # Another address is under the cap: it reaches Flask and gets its stream.
    response = client.get(_path(centre.id), environ_base={"REMOTE_ADDR": "127.0.0.9"})
    try:
        assert response.status_code == 200 and reached == [1]
    finally:
        response.close()


def test_over_the_per_worker_total_is_503_before_flask(gated):
    app, reached = gated
    centre = _centre(app)
    hub = _hub(app)
    for n in range(4):
        hub.open(centre.id, f"10.0.0.{n}", exempt=True)
    response = app.test_client().get(_path(centre.id), headers={"Accept-Language": "en"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert response.get_json()["error"] == {
        "code": "unavailable",
        "message": _flask_message(app, streams.StreamsFull, "en"),
        "details": {"reason": "worker_full"},
    }
    assert reached == []


def test_a_display_token_goes_through_to_flask_which_verifies_it(gated, runner_for):
    app, reached = gated
    centre = _centre(app)
    hub = _hub(app)
    for _ in range(2):
        hub.open(centre.id, ADDRESS, exempt=False)
    client = app.test_client()
    token = runner_for(app).invoke(args=["display-token", centre.id]).output.strip().splitlines()[-1]
    for kwargs in ({"query_string": {"token": token}}, {"headers": {"Authorization": f"Bearer {token}"}}):
        response = client.get(_path(centre.id), **kwargs)
        try:
            assert response.status_code == 200
        finally:
            response.close()
    assert len(reached) == 2
    forged = client.get(_path(centre.id), query_string={"token": "dsp_forged"})
    assert forged.status_code == 401 and forged.get_json()["error"]["code"] == "invalid_token"
    assert len(reached) == 3


def test_a_refusal_across_workers_is_remembered_briefly_then_flask_decides_again(gated, monkeypatch):
    """With 2 workers no worker alone holds an address's cap: Redis's refusal, remembered, feeds the gate."""
    app, reached = gated
    centre = _centre(app)
    with app.app_context():
        other_worker = streams.StreamHub(get_redis(), app.config)
    try:
        held = [other_worker.open(centre.id, ADDRESS, exempt=False) for _ in range(2)]
        client = app.test_client()
        headers = {"Accept-Language": "en"}
        by_flask = client.get(_path(centre.id), headers=headers)
        assert by_flask.status_code == 429 and reached == [1]  # Flask refused it, from the count in Redis
        by_gate = client.get(_path(centre.id), headers=headers)
        assert by_gate.status_code == 429 and reached == [1]  # the gate, from memory
        assert by_gate.get_json() == by_flask.get_json()
        assert by_gate.headers["Retry-After"] == by_flask.headers["Retry-After"]

        other_worker.close(held[0])  # a place frees in the other worker: this one sees it once memory lapses
        hub = _hub(app)
        lapsed = {key: until - streams.REFUSAL_MEMORY_SECONDS for key, until in hub._refused_until.items()}
        monkeypatch.setattr(hub, "_refused_until", lapsed)
        # Lapsed: one request at a time goes on to ask Redis (a burst must not all pass to Flask again).
        assert hub.refusal_from_memory(ADDRESS) is None
        second = hub.refusal_from_memory(ADDRESS, arriving_from_address=1)
        assert isinstance(second, streams.StreamsFromAddress)
        response = client.get(_path(centre.id))
        try:
            assert response.status_code == 200 and reached == [1, 1]
            assert hub._refused_until == {}  # there was room: forgotten
        finally:
            response.close()
    finally:
        other_worker.stop()


def test_requests_still_inside_flask_count_so_a_burst_cannot_all_pass_at_once(gated):
    """2,000 connections arriving together: each one let through is counted until Flask has answered."""
    app, _ = gated
    centre = _centre(app)
    _hub(app).open(centre.id, ADDRESS, exempt=False)  # one of the 2 places held
    seen = []

    def flask_still_busy(environ, start_response):  # while this one is inside Flask, the next arrives
        seen.append(environ["REMOTE_ADDR"])
        if len(seen) == 1:
            nested = _call(front, _environ(centre.id, ADDRESS))
            assert nested[0].startswith("429")
            other = _call(front, _environ(centre.id, "10.9.9.9"))  # another address is not held back
            assert other[0].startswith("200")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    front = gate.StreamGate(app, flask_still_busy)
    assert _call(front, _environ(centre.id, ADDRESS))[0].startswith("200")
    assert seen == [ADDRESS, "10.9.9.9"]
    assert front._arriving == {} and front._arriving_total == 0
    assert _call(front, _environ(centre.id, ADDRESS))[0].startswith("200")  # its turn has passed


def _environ(centre_id: str, address: str) -> dict:
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path=_path(centre_id)).get_environ()
    environ["REMOTE_ADDR"] = address
    return environ


def _call(wsgi_app, environ) -> list:
    started = []
    body = b"".join(wsgi_app(environ, lambda status, headers: started.append(status)))
    return [*started, body]


def test_under_the_caps_and_other_paths_are_untouched(gated):
    app, reached = gated
    centre = _centre(app)
    client = app.test_client()
    response = client.get(_path(centre.id))
    try:
        assert response.status_code == 200
    finally:
        response.close()
    assert client.get(f"/api/v1/centres/{centre.id}/queue").status_code == 200
    assert len(reached) == 2


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HTTP_AUTHORIZATION": "Bearer dsp_abc"}, True),
        ({"HTTP_AUTHORIZATION": "bearer  dsp_abc"}, True),
        ({"HTTP_AUTHORIZATION": "Bearer eyJ.x.y"}, False),
        ({"QUERY_STRING": "last_event_id=3&token=dsp_abc"}, True),
        ({"QUERY_STRING": "token=kio_abc"}, False),
        ({}, False),
    ],
)
def test_what_counts_as_carrying_a_display_token(environ, expected):
    assert gate.carries_display_token(environ) is expected


def _count_redis_calls(app):
    """A counter of commands sent through the app's Redis client from now on."""
    with app.app_context():
        client = get_redis()
    calls = []
    real = type(client).execute_command

    def counted(self, *args, **kwargs):
        calls.append(args[0] if args else None)
        return real(self, *args, **kwargs)

    client.execute_command = counted.__get__(client)
    return lambda: len(calls)


@pytest.fixture
def runner_for():
    return lambda app: app.test_cli_runner()
