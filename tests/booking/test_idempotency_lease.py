"""`Idempotency-Key` as a lease: a key whose request died is taken over by the replay, which answers
with what was written (the orphan hold) or carries the request out; never a second booking, and never
an abuse record for the system's own failure. Keys are claimed only after authentication."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app import clock
from app.extensions import db
from app.idempotency import IdempotencyKey
from booking import services
from booking.models import AbuseEvent

API = "/api/v1"


def _keys(kit) -> list[IdempotencyKey]:
    return kit.call(lambda: list(db.session.scalars(select(IdempotencyKey))))


def _abuse_events(kit) -> int:
    return kit.call(lambda: db.session.scalar(select(func.count()).select_from(AbuseEvent)))


def _died_after_commit(kit, citizen: int, slot_id: int, key: str) -> str:
    """What a worker killed -9 after committing its hold leaves: the claimed key (no answer) and the hold."""
    from app.idempotency import _fingerprint

    with kit.app.test_request_context(
        f"{API}/bookings", method="POST", json={"slot_id": slot_id}, headers=kit.headers_for(citizen)
    ):
        now = clock.now()
        db.session.add(
            IdempotencyKey(
                owner=f"citizen:{citizen}",
                key=key,
                fingerprint=_fingerprint(),
                created_at=now,
                lease_until=now + dt.timedelta(seconds=kit.app.config["IDEMPOTENCY_LEASE_SECONDS"]),
            )
        )
        db.session.commit()
        reference = services.hold_slot(account_id=citizen, slot_id=slot_id).reference
        db.session.remove()
    return reference


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
def test_anonymous_and_invalid_callers_get_401_and_claim_no_key(kit, client, headers):
    slot = kit.slot(kit.offering())
    for _ in range(3):
        response = client.post(
            f"{API}/bookings", json={"slot_id": slot.id}, headers={**headers, "Idempotency-Key": "anon-1"}
        )
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] in {"unauthorized", "invalid_token"}
    assert _keys(kit) == []


def test_a_replay_within_the_lease_is_told_when_to_retry(kit, client):
    slot = kit.slot(kit.offering())
    citizen = kit.citizen_id()
    _died_after_commit(kit, citizen, slot.id, "k-live")
    response = client.post(
        f"{API}/bookings",
        json={"slot_id": slot.id},
        headers=kit.headers_for(citizen, **{"Idempotency-Key": "k-live"}),
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "idempotency_in_progress"
    # When to retry is in the details (app/http_headers.py keeps `Retry-After` for 429 and 503 only).
    wait = response.get_json()["error"]["details"]["retry_after"]
    assert 1 <= wait <= kit.app.config["IDEMPOTENCY_LEASE_SECONDS"]


def test_after_the_lease_the_replay_answers_the_orphan_hold(kit, client):
    slot = kit.slot(kit.offering(), capacity=3)
    citizen = kit.citizen_id()
    orphan = _died_after_commit(kit, citizen, slot.id, "k-orphan")
    clock.shift(dt.timedelta(seconds=kit.app.config["IDEMPOTENCY_LEASE_SECONDS"] + 1))
    headers = kit.headers_for(citizen, **{"Idempotency-Key": "k-orphan"})

    first = client.post(f"{API}/bookings", json={"slot_id": slot.id}, headers=headers)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["reference"] == orphan and first.get_json()["status"] == "held"
    assert first.headers["Idempotent-Recovered"] == "true"
    again = client.post(f"{API}/bookings", json={"slot_id": slot.id}, headers=headers)
    assert again.status_code == 201 and again.get_json()["reference"] == orphan
    assert again.headers["Idempotent-Replayed"] == "true"

    assert len(kit.bookings(account_id=citizen)) == 1
    assert kit.slot_state(slot.id) == (1, 3)
    assert _abuse_events(kit) == 0  # the citizen's "second hold" was the system's own retry
    [key] = _keys(kit)
    assert key.response_status == 201 and key.attempt == 2


def test_after_the_lease_a_request_that_wrote_nothing_is_carried_out(kit, client):
    slot = kit.slot(kit.offering(), capacity=3)
    citizen = kit.citizen_id()
    kit.call(
        lambda: (
            db.session.add(
                IdempotencyKey(
                    owner=f"citizen:{citizen}", key="k-empty", fingerprint="x", created_at=clock.now()
                )
            ),
            db.session.commit(),
        )
    )
    headers = kit.headers_for(citizen, **{"Idempotency-Key": "k-empty"})
    # Another body under the same key is still refused, even once the lease has lapsed.
    assert client.post(f"{API}/bookings", json={"slot_id": slot.id}, headers=headers).status_code == 422

    kit.call(lambda: (db.session.execute(IdempotencyKey.__table__.delete()), db.session.commit()))
    _died_before_writing(kit, citizen, slot.id, "k-empty2")
    clock.shift(dt.timedelta(seconds=kit.app.config["IDEMPOTENCY_LEASE_SECONDS"] + 1))
    headers = kit.headers_for(citizen, **{"Idempotency-Key": "k-empty2"})
    response = client.post(f"{API}/bookings", json={"slot_id": slot.id}, headers=headers)
    assert response.status_code == 201 and "Idempotent-Recovered" not in response.headers
    assert len(kit.bookings(account_id=citizen)) == 1
    assert kit.slot_state(slot.id) == (1, 3)


def _died_before_writing(kit, citizen: int, slot_id: int, key: str) -> None:
    from app.idempotency import _fingerprint

    with kit.app.test_request_context(
        f"{API}/bookings", method="POST", json={"slot_id": slot_id}, headers=kit.headers_for(citizen)
    ):
        db.session.add(
            IdempotencyKey(
                owner=f"citizen:{citizen}", key=key, fingerprint=_fingerprint(), created_at=clock.now()
            )
        )
        db.session.commit()
        db.session.remove()


def test_a_hold_committed_but_answered_503_is_what_the_replay_gets(kit, client, monkeypatch):
    """The database drops after the hold's commit: 503, the lease is released, the replay answers the hold
    at once (no 409 wait), and no abuse event is written for the 'second' hold."""
    slot = kit.slot(kit.offering(), capacity=3)
    citizen = kit.citizen_id()
    real_hold = services.hold_slot

    def hold_then_lose_the_database(**kwargs):
        real_hold(**kwargs)
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection unexpectedly"))

    monkeypatch.setattr(services, "hold_slot", hold_then_lose_the_database)
    headers = kit.headers_for(citizen, **{"Idempotency-Key": "k-503"})
    lost = client.post(f"{API}/bookings", json={"slot_id": slot.id}, headers=headers)
    assert lost.status_code == 503
    assert lost.get_json()["error"]["code"] == "unavailable" and lost.headers["Retry-After"]
    monkeypatch.setattr(services, "hold_slot", real_hold)

    replay = client.post(f"{API}/bookings", json={"slot_id": slot.id}, headers=headers)
    assert replay.status_code == 201
    [booking] = kit.bookings(account_id=citizen)
    assert replay.get_json()["reference"] == booking.reference
    assert kit.slot_state(slot.id) == (1, 3)
    assert _abuse_events(kit) == 0


def test_an_attempt_that_outlived_its_lease_cannot_overwrite_the_takers_answer(kit):
    from app.idempotency import _store

    kit.call(
        lambda: (
            db.session.add(
                IdempotencyKey(
                    owner="citizen:1", key="k-stale", fingerprint="f", created_at=clock.now(), attempt=2
                )
            ),
            db.session.commit(),
        )
    )
    [row] = _keys(kit)
    with kit.app.test_request_context():
        stale = kit.app.response_class('{"stale": true}', status=201, mimetype="application/json")
        _store(row.id, 1, stale)
        db.session.remove()
    [row] = _keys(kit)
    assert row.response_status is None and row.response_body is None
