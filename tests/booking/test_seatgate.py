"""The sold-out gate (booking/seatgate.py) and the one-transaction hold.

The gate only ever refuses, for a moment, a slot the database itself found full; it never grants a seat.
"""

import datetime as dt
import itertools

import pytest
from sqlalchemy import event

from app import clock
from app.extensions import db
from app.redis_client import get_redis
from booking import references
from booking.seatgate import GRACE_MS, KEY


def _hold(client, headers, slot_id):
    return client.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=headers)


class _Statements:
    """Every SQL statement and transaction end the app's engine sees while active."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.seen: list[str] = []

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(" ".join(statement.split())[:150])

    def _commit(self, conn):
        self.seen.append("COMMIT")

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self.seen

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)


def _gate(app, slot_id):
    with app.app_context():
        return get_redis().get(KEY.format(slot_id=slot_id)), get_redis().pttl(KEY.format(slot_id=slot_id))


def test_a_slot_found_full_is_then_refused_without_the_database(app, client, kit, monkeypatch):
    from booking.draws import forget_active_draws

    # The holds' "no draw is running" is remembered for a second; on a loaded machine the requests below
    # can be further apart than that, and the re-read would be counted as the refusal's statement.
    monkeypatch.setitem(app.config, "ACTIVE_DRAWS_SECONDS", 3600)
    forget_active_draws()
    slot = kit.slot(kit.offering(), capacity=1)
    first, second, third = kit.citizens(3)
    assert _hold(client, kit.headers_for(first), slot.id).status_code == 201
    assert _gate(app, slot.id)[0] is None  # taking the last seat does not close the gate by itself

    # The database answers the first refusal (a read) and closes the gate ...
    refused = _hold(client, kit.headers_for(second), slot.id)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "slot_full"
    assert _gate(app, slot.id)[0] is not None
    # ... so the next one costs no SQL statement at all, and answers the same.
    headers = kit.headers_for(third)
    with _Statements(app) as seen:
        again = _hold(client, headers, slot.id)
    assert again.status_code == 409
    assert again.get_json()["error"] == refused.get_json()["error"]
    assert seen == []
    assert kit.slot_state(slot.id) == (1, 1)


def test_the_gate_never_outlives_the_next_seat_release(make_app, kit):
    app = make_app(SEAT_GATE_MS="3600000", HOLD_SECONDS="120")  # an hour's gate, a 2-minute hold
    client = app.test_client()
    slot = kit.slot(kit.offering(), capacity=1)
    first, second, third = kit.citizens(3)
    assert _hold(client, kit.headers_for(first), slot.id).status_code == 201
    assert _hold(client, kit.headers_for(second), slot.id).status_code == 409
    _, pttl = _gate(app, slot.id)
    # Refusing only until the hold in the way expires (the key outlives that by the grace a probe uses).
    assert 0 < pttl <= 120_000 + GRACE_MS

    clock.shift(dt.timedelta(seconds=121))  # the hold expired: the gate is open on the app's clock too
    held = _hold(client, kit.headers_for(third), slot.id)
    assert held.status_code == 201, held.get_json()
    assert kit.slot_state(slot.id) == (1, 1)


def test_a_cancel_reopens_the_gate_at_once(make_app, kit):
    app = make_app(CANCEL_RELEASE_DELAY_MINUTES="0")
    client = app.test_client()
    slot = kit.slot(kit.offering(), capacity=1)
    first, second = kit.citizens(2)
    h1, h2 = kit.headers_for(first), kit.headers_for(second)
    reference = _hold(client, h1, slot.id).get_json()["reference"]
    assert _hold(client, h2, slot.id).status_code == 409
    assert _gate(app, slot.id)[0] is not None

    assert client.post(f"/api/v1/bookings/{reference}/cancel", headers=h1).status_code == 200
    assert _gate(app, slot.id)[0] is None
    held = _hold(client, h2, slot.id)
    assert held.status_code == 201, held.get_json()
    assert kit.slot_state(slot.id) == (1, 1)


def test_a_reschedule_reopens_the_slot_it_leaves(app, client, kit):
    offering = kit.offering()
    old, new = kit.slot(offering, capacity=1), kit.slot(offering, capacity=1)
    first, second = kit.citizens(2)
    h1, h2 = kit.headers_for(first), kit.headers_for(second)
    reference = _hold(client, h1, old.id).get_json()["reference"]
    assert _hold(client, h2, old.id).status_code == 409
    moved = client.post(f"/api/v1/bookings/{reference}/reschedule", json={"slot_id": new.id}, headers=h1)
    assert moved.status_code == 200, moved.get_json()
    assert _hold(client, h2, old.id).status_code == 201


def test_the_gate_can_be_turned_off(make_app, kit):
    app = make_app(SEAT_GATE_MS="0")
    client = app.test_client()
    slot = kit.slot(kit.offering(), capacity=1)
    first, second = kit.citizens(2)
    assert _hold(client, kit.headers_for(first), slot.id).status_code == 201
    headers = kit.headers_for(second)
    for _ in range(2):
        with _Statements(app) as seen:
            assert _hold(client, headers, slot.id).status_code == 409
        assert seen and not any(s.startswith(("INSERT", "UPDATE", "DELETE")) for s in seen)
    assert _gate(app, slot.id)[0] is None


def test_a_hold_is_one_transaction_answered_from_the_rows_in_hand(app, client, kit):
    slot = kit.slot(kit.offering(), capacity=2)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    with _Statements(app) as seen:
        held = _hold(client, headers, slot.id)
    assert held.status_code == 201, held.get_json()
    assert seen.count("COMMIT") == 1 and seen[-1] == "COMMIT"  # nothing read again after the commit
    body = held.get_json()
    assert body["centre_id"] == slot_centre(kit, slot) and body["slot_id"] == slot.id
    assert body["start"] and body["centre_name"] and body["status"] == "held"

    with _Statements(app) as seen:
        confirmed = client.post(f"/api/v1/bookings/{body['reference']}/confirm", headers=headers)
    assert confirmed.status_code == 200
    assert confirmed.get_json()["status"] == "confirmed" and confirmed.get_json()["confirmed_at"]
    assert seen.count("COMMIT") == 1 and seen[-1] == "COMMIT"
    assert kit.slot_state(slot.id) == (1, 2)


def slot_centre(kit, slot) -> str:
    from app.catalogue.models import Offering

    return kit.make.fresh(Offering, slot.offering_id).centre_id


def test_an_own_expired_hold_is_released_in_the_same_transaction(app, client, kit):
    offering = kit.offering()
    first_slot, second_slot = kit.slot(offering, capacity=1), kit.slot(offering, capacity=1)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    assert _hold(client, headers, first_slot.id).status_code == 201
    clock.shift(dt.timedelta(seconds=301))
    with _Statements(app) as seen:
        again = _hold(client, headers, second_slot.id)
    assert again.status_code == 201, again.get_json()
    assert seen.count("COMMIT") == 1
    assert kit.slot_state(first_slot.id) == (0, 1) and kit.slot_state(second_slot.id) == (1, 1)


def test_a_reference_already_taken_is_drawn_again(app, client, kit, monkeypatch):
    slot = kit.slot(kit.offering(), capacity=2)
    first, second = kit.citizens(2)
    taken = _hold(client, kit.headers_for(first), slot.id).get_json()["reference"]
    letters = itertools.chain(taken[3:], "ZZZZZZ")

    class _Draws:
        @staticmethod
        def choice(alphabet):
            return next(letters)

    monkeypatch.setattr(references, "secrets", _Draws)
    held = _hold(client, kit.headers_for(second), slot.id)
    assert held.status_code == 201, held.get_json()
    assert held.get_json()["reference"] == "BK-ZZZZZZ" != taken
    assert kit.slot_state(slot.id) == (2, 2)


@pytest.mark.parametrize("gate_ms", ["2000", "0"])
def test_many_refusals_never_stop_a_freed_seat_from_selling(make_app, kit, gate_ms):
    """Holds expiring under a closed gate: the seat sells as soon as the hold in the way is gone."""
    app = make_app(SEAT_GATE_MS=gate_ms)
    client = app.test_client()
    slot = kit.slot(kit.offering(), capacity=2)
    citizens = kit.citizens(6)
    codes = [_hold(client, kit.headers_for(c), slot.id).status_code for c in citizens[:4]]
    assert codes == [201, 201, 409, 409]
    clock.shift(dt.timedelta(seconds=301))
    codes = [_hold(client, kit.headers_for(c), slot.id).status_code for c in citizens[4:]]
    assert codes == [201, 201]
    assert kit.slot_state(slot.id) == (2, 2)


def test_a_lapsed_gate_lets_one_request_ask_the_database(app, kit):
    from booking import seatgate

    slot = kit.slot(kit.offering(), capacity=1)
    with app.app_context():
        seatgate.close(slot.id, now=clock.now(), next_release=None)
        assert seatgate.check(slot.id) == seatgate.CLOSED
        clock.shift(dt.timedelta(seconds=10))  # past the deadline (app clock); the key lives on in Redis
        checks = [seatgate.check(slot.id) for _ in range(3)]
        assert checks == [seatgate.PROBE, seatgate.CLOSED, seatgate.CLOSED]
        seatgate.close(slot.id, now=clock.now(), next_release=None)  # the probe found it still full
        assert seatgate.check(slot.id) == seatgate.CLOSED
        clock.shift(dt.timedelta(seconds=10))
        assert seatgate.check(slot.id) == seatgate.PROBE  # a new probe: the last one ended with the close
        seatgate.reopen(slot.id)  # ... and found seats
        assert seatgate.check(slot.id) == seatgate.OPEN
