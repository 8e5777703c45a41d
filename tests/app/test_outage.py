"""PostgreSQL unreachable: every answer is 503 `unavailable` in the envelope with `Retry-After` (never a
500, never the server's HTML page), `/readyz` says not ready, and the pool heals by itself."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tests.conftest import DATABASE_URL, IS_POSTGRES

API = "/api/v1"


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True)[:200])
    assert response.is_json
    assert response.get_json()["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_every_answer_is_503_while_the_database_is_down(make_app, dead_database_url):
    app = make_app(DATABASE_URL=dead_database_url, DB_CONNECT_TIMEOUT="1")
    client = app.test_client()
    with app.app_context():
        from app.tokens import issue_access_token

        token, _ = issue_access_token(account_id=1, role="citizen", centre_id=None, language="en")
    citizen = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}

    _assert_unavailable(client.get(f"{API}/services"))
    _assert_unavailable(client.get(f"{API}/centres/amman/slots?service=passport.renew"))
    _assert_unavailable(
        client.post(f"{API}/auth/login", json={"national_id": "9990000001", "password": "x1"})
    )
    _assert_unavailable(client.get(f"{API}/bookings", headers=citizen))
    _assert_unavailable(
        client.post(f"{API}/bookings", json={"slot_id": 1}, headers={**citizen, "Idempotency-Key": "k1"})
    )
    _assert_unavailable(client.get(f"{API}/centres/amman/queue"))
    kiosk = {"Authorization": "Bearer ksk_whatever"}
    _assert_unavailable(client.post(f"{API}/centres/amman/tickets", json={"service": "x"}, headers=kiosk))

    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "not_ready"
    assert ready.get_json()["checks"]["database"].startswith("error")
    assert client.get("/healthz").status_code == 200


def test_an_unavailable_message_is_localised(make_app, dead_database_url):
    app = make_app(DATABASE_URL=dead_database_url, DB_CONNECT_TIMEOUT="1")
    english = app.test_client().get(f"{API}/services", headers={"Accept-Language": "en"}).get_json()
    arabic = app.test_client().get(f"{API}/services", headers={"Accept-Language": "ar"}).get_json()
    assert english["error"]["message"] != arabic["error"]["message"]


def _with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


@pytest.mark.postgres_only
def test_a_connection_lost_mid_request_is_503_and_the_pool_heals(make_app):
    """The server ends our connection between two statements of a request (as `restart -m immediate`
    does): that request is a 503 in the envelope, the teardown's rollback on the dead connection does not
    escape as an HTML page, and the next request gets a fresh connection (the pool was invalidated)."""
    assert IS_POSTGRES
    app = make_app(DATABASE_URL=_with_application_name(DATABASE_URL, "sanad-outage-test"))

    @app.get("/_test/connection-dies")
    def connection_dies():
        from app.extensions import db

        db.session.execute(text("SELECT 1"))
        with db.engine.connect() as other:  # another connection kills ours, as a server restart would
            pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        db.session.execute(text("SELECT 1"))
        return {"unreachable": True}

    client = app.test_client()
    assert client.get(f"{API}/services").status_code == 200
    _assert_unavailable(client.get("/_test/connection-dies"))
    assert client.get(f"{API}/services").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.postgres_only
def test_every_pooled_connection_killed_the_next_requests_recover_by_themselves(make_app):
    assert IS_POSTGRES
    name = "sanad-outage-pool"
    app = make_app(DATABASE_URL=_with_application_name(DATABASE_URL, name))
    client = app.test_client()
    for _ in range(3):
        assert client.get(f"{API}/services").status_code == 200
    from sqlalchemy import create_engine

    killer = create_engine(DATABASE_URL)
    with killer.begin() as conn:
        killed = conn.execute(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :n"),
            {"n": name},
        ).scalar()
        _wait_until_gone(conn, name)
    killer.dispose()
    assert killed >= 1
    for _ in range(3):
        assert client.get(f"{API}/services").status_code == 200


def _wait_until_gone(conn, name: str) -> None:
    """`pg_terminate_backend` only signals: wait (at most 5 s) until those backends have exited, as a
    restarted server has before it takes connections again."""
    others = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n AND pid <> pg_backend_pid()"
    for _ in range(100):
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))  # else a transaction sees one frozen view
        left = conn.execute(
            text(others),
            {"n": name},
        ).scalar()
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"{left} backends named {name} still running after 5 s")


@pytest.mark.postgres_only
def test_a_pooled_connection_the_server_closed_is_seen_at_checkout_without_a_statement(make_app):
    """The checkout's check (app/pool.py) reads the socket: a live idle connection passes, one whose
    backend was terminated is refused, so the pool hands out a fresh one instead."""
    assert IS_POSTGRES
    from sqlalchemy import create_engine

    from app.pool import closed_by_server

    name = "sanad-outage-checkout"
    engine = create_engine(_with_application_name(DATABASE_URL, name))
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert closed_by_server(raw) is False
            with engine.connect() as killer, killer.begin():
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                conn.rollback()
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                _wait_until_gone(killer, name)
            assert closed_by_server(raw) is True
    finally:
        engine.dispose()


def test_an_outage_raised_after_the_view_is_a_503_too(app):
    """Redis (or the database) lost in an after-request hook, outside the view's error handling, as
    Flask-Limiter's header injection does on the first request after Redis dies."""
    import redis

    lost = []
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as under gunicorn: tests otherwise re-raise unhandled errors

    @app.after_request
    def lose_redis(response):
        if lost:  # Redis is lost once; the error answer's own hooks then run without it
            return response
        lost.append(True)
        raise redis.ConnectionError("Connection closed by server.")

    _assert_unavailable(app.test_client().get(f"{API}/services"))
