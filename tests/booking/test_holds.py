"""Hold → confirm → cancel → reschedule over HTTP, and seats freed lazily without any scheduler."""

import datetime as dt

from app import clock
from booking import services
from booking.models import Booking
from notifications.models import Notification


def _hold(client, headers, slot_id, **extra):
    return client.post("/api/v1/bookings", json={"slot_id": slot_id}, headers={**headers, **extra})


def test_hold_confirm_get_list(client, kit):
    offering = kit.offering()
    slot = kit.slot(offering, capacity=2)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)

    held = _hold(client, headers, slot.id)
    assert held.status_code == 201, held.get_json()
    body = held.get_json()
    assert body["status"] == "held"
    assert body["reference"].startswith("BK-") and len(body["reference"]) == 9
    assert body["timezone"] == "Asia/Amman"
    assert body["start"].endswith("+03:00") and body["hold_expires_at"].endswith("+03:00")
    expires = dt.datetime.fromisoformat(body["hold_expires_at"])
    assert 290 <= (expires - clock.now()).total_seconds() <= 300
    assert kit.slot_state(slot.id) == (1, 2)

    ref = body["reference"]
    confirmed = client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["status"] == "confirmed"
    assert confirmed.get_json()["hold_expires_at"] is None
    again = client.post(f"/api/v1/bookings/{ref.lower()}/confirm", headers=headers)
    assert again.status_code == 200

    got = client.get(f"/api/v1/bookings/{ref}", headers=headers)
    assert got.status_code == 200 and got.get_json()["reference"] == ref
    listed = client.get("/api/v1/bookings", headers=headers)
    assert listed.status_code == 200
    assert [b["reference"] for b in listed.get_json()] == [ref]
    assert "X-Pagination" in listed.headers
    assert kit.slot_state(slot.id) == (1, 2)


def test_expired_hold_answers_410_and_frees_the_seat_without_scheduler(client, kit):
    offering = kit.offering()
    slot = kit.slot(offering, capacity=1)
    first, second = kit.citizens(2)
    h1, h2 = kit.headers_for(first), kit.headers_for(second)

    ref = _hold(client, h1, slot.id).get_json()["reference"]
    assert _hold(client, h2, slot.id).get_json()["error"]["code"] == "slot_full"

    clock.shift(dt.timedelta(seconds=301))
    # The stale hold no longer hides the seat from the search ...
    listed = client.get(f"/api/v1/centres/{offering.centre_id}/slots?service={offering.service_code}")
    assert [s["available"] for s in listed.get_json() if s["slot_id"] == slot.id] == [1]
    # ... and the next hold takes it (the seat is released lazily, inside the take).
    assert _hold(client, h2, slot.id).status_code == 201
    assert kit.slot_state(slot.id) == (1, 1)

    late = client.post(f"/api/v1/bookings/{ref}/confirm", headers=h1)
    assert late.status_code == 410
    assert late.get_json()["error"]["code"] == "hold_expired"
    assert kit.bookings(reference=ref)[0].status == "expired"
    assert kit.seat_holders(slot.id) == 1


def test_confirm_after_expiry_frees_the_seat_itself(client, kit):
    offering = kit.offering()
    slot = kit.slot(offering, capacity=1)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    ref = _hold(client, headers, slot.id).get_json()["reference"]
    clock.shift(dt.timedelta(seconds=300))
    assert client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers).status_code == 410
    assert kit.slot_state(slot.id) == (0, 1)


def test_own_expired_hold_does_not_block_a_new_hold(client, kit):
    offering = kit.offering()
    a, b = kit.slot(offering, hours_ahead=30), kit.slot(offering, hours_ahead=50)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    assert _hold(client, headers, a.id).status_code == 201
    assert _hold(client, headers, b.id).get_json()["error"]["code"] == "hold_limit"
    clock.shift(dt.timedelta(minutes=6))
    assert _hold(client, kit.headers_for(citizen), b.id).status_code == 201
    assert kit.slot_state(a.id)[0] == 0


def test_cancelled_seat_returns_to_sale_only_after_the_delay(client, kit):
    offering = kit.offering()
    slot = kit.slot(offering, capacity=1)
    first, second = kit.citizens(2)
    h1, h2 = kit.headers_for(first), kit.headers_for(second)
    ref = _hold(client, h1, slot.id).get_json()["reference"]
    client.post(f"/api/v1/bookings/{ref}/confirm", headers=h1)

    cancelled = client.post(f"/api/v1/bookings/{ref}/cancel", headers=h1)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    # Trading the slot to a friend does not work: the seat stays taken for the release delay.
    assert _hold(client, h2, slot.id).get_json()["error"]["code"] == "slot_full"
    search = f"/api/v1/centres/{offering.centre_id}/slots?service={offering.service_code}"
    assert slot.id not in [s["slot_id"] for s in client.get(search).get_json()]

    clock.shift(dt.timedelta(minutes=30))
    assert slot.id in [s["slot_id"] for s in client.get(search).get_json()]
    h2 = kit.headers_for(second)  # access tokens live 15 minutes
    assert _hold(client, h2, slot.id).status_code == 201
    assert kit.slot_state(slot.id) == (1, 1)
    assert kit.seat_holders(slot.id) == 1


def test_cancel_twice_is_harmless_and_a_past_booking_cannot_be_cancelled(client, kit):
    offering = kit.offering()
    slot = kit.slot(offering, hours_ahead=3)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    ref = _hold(client, headers, slot.id).get_json()["reference"]
    client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers)
    clock.shift(dt.timedelta(hours=4))
    late = client.post(f"/api/v1/bookings/{ref}/cancel", headers=kit.headers_for(citizen))
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "invalid_booking_state"
    clock.reset()
    headers = kit.headers_for(citizen)
    assert client.post(f"/api/v1/bookings/{ref}/cancel", headers=headers).status_code == 200
    assert client.post(f"/api/v1/bookings/{ref}/cancel", headers=headers).status_code == 200


def test_reschedule_moves_the_seat(client, kit):
    offering = kit.offering()
    old, new = kit.slot(offering, capacity=1, hours_ahead=30), kit.slot(offering, capacity=1, hours_ahead=54)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    ref = _hold(client, headers, old.id).get_json()["reference"]
    client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers)

    moved = client.post(f"/api/v1/bookings/{ref}/reschedule", json={"slot_id": new.id}, headers=headers)
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["slot_id"] == new.id and moved.get_json()["status"] == "confirmed"
    assert kit.slot_state(old.id) == (0, 1)
    assert kit.slot_state(new.id) == (1, 1)
    same = client.post(f"/api/v1/bookings/{ref}/reschedule", json={"slot_id": new.id}, headers=headers)
    assert same.get_json()["error"]["code"] == "same_slot"


def test_reschedule_to_a_full_slot_keeps_the_old_seat(client, kit):
    offering = kit.offering()
    old, full = kit.slot(offering, capacity=1, hours_ahead=30), kit.slot(offering, capacity=1, hours_ahead=54)
    a, b = kit.citizens(2)
    ha, hb = kit.headers_for(a), kit.headers_for(b)
    ref = _hold(client, ha, old.id).get_json()["reference"]
    client.post(f"/api/v1/bookings/{ref}/confirm", headers=ha)
    assert _hold(client, hb, full.id).status_code == 201

    refused = client.post(f"/api/v1/bookings/{ref}/reschedule", json={"slot_id": full.id}, headers=ha)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "slot_full"
    assert kit.slot_state(old.id) == (1, 1) and kit.slot_state(full.id) == (1, 1)
    assert kit.bookings(reference=ref)[0].slot_id == old.id


def test_reschedule_to_another_service_is_refused(client, kit):
    offering, other = kit.offering(), kit.offering()
    slot, foreign = kit.slot(offering), kit.slot(other)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    ref = _hold(client, headers, slot.id).get_json()["reference"]
    refused = client.post(f"/api/v1/bookings/{ref}/reschedule", json={"slot_id": foreign.id}, headers=headers)
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "wrong_service"


def test_unknown_slot_is_404_and_an_unverified_citizen_cannot_book(client, make, kit):
    citizen = kit.citizen_id()
    assert _hold(client, kit.headers_for(citizen), 999999).status_code == 404
    unverified = make.citizen(verified=False)
    slot = kit.slot(kit.offering())
    refused = _hold(client, make.headers(unverified), slot.id)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "account_not_verified"


def test_sweep_releases_due_seats(rctx, kit):
    offering = kit.offering()
    slot = kit.slot(offering, capacity=3)
    citizens = kit.citizens(2)
    for citizen in citizens:
        services.hold_slot(account_id=citizen, slot_id=slot.id)
    clock.shift(dt.timedelta(seconds=301))
    from booking.tasks import expire_holds

    assert expire_holds() == 2
    assert expire_holds() == 0
    assert kit.slot_state(slot.id) == (0, 3)
    assert {b.status for b in kit.bookings(slot_id=slot.id)} == {"expired"}
    assert all(not b.holds_seat for b in kit.bookings(slot_id=slot.id))
    _ = Booking


def test_a_sold_out_refusal_writes_nothing(app, client, kit):
    """On release day most answers are refusals: they must not cost the database a write."""
    from sqlalchemy import event

    from app.extensions import db

    offering = kit.offering()
    slot = kit.slot(offering, capacity=1, hours_ahead=30)
    first, second = kit.citizens(2)
    assert _hold(client, kit.headers_for(first), slot.id).status_code == 201
    writes = []

    def count_writes(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writes.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count_writes)
    try:
        refused = _hold(client, kit.headers_for(second, **{"X-Device-Id": "phone-2"}), slot.id)
    finally:
        event.remove(engine, "before_cursor_execute", count_writes)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "slot_full"
    assert writes == []


def test_a_passport_hold_reads_the_registry_record_with_the_slot(client, kit, app, monkeypatch):
    """A service with an eligibility rule needs the citizen's registry record: with the local registry it
    comes with the slot's read (the eligibility check finds it in the session), not as a statement of its
    own, and the rule still refuses (a passport valid for years is not due for renewal)."""
    import datetime as dt

    from app import clock
    from booking.draws import forget_active_draws
    from tests.booking.queries import count_queries
    from tests.conftest import IS_POSTGRES

    monkeypatch.setitem(app.config, "ACTIVE_DRAWS_SECONDS", 3600)
    forget_active_draws()
    slot = kit.slot(kit.offering(service_kw={"code": "passport.renew.q", "eligibility": "passport_renew"}))
    assert _hold(client, kit.headers_for(kit.citizen_id()), slot.id).status_code == 201  # compiled once
    headers = kit.headers_for(kit.citizen_id())
    with count_queries(app) as statements:
        held = _hold(client, headers, slot.id)
    assert held.status_code == 201, held.get_json()
    reads = [s for s in statements if s.lstrip().startswith("SELECT")]
    assert len(reads) == 2, reads  # the slot with the account and the record; the citizen's standing
    assert "registry_people" in reads[0], reads[0]
    assert len(statements) == (3 if IS_POSTGRES else 6), statements

    far = clock.now().date() + dt.timedelta(days=3650)
    refused = _hold(client, kit.headers_for(kit.citizen_id(passport_expiry=far)), slot.id)
    assert refused.status_code == 403, refused.get_json()
    assert refused.get_json()["error"]["code"] == "not_eligible"


def test_a_reference_drawn_twice_takes_the_seat_once(client, kit, monkeypatch):
    """A new booking's reference that another booking has is drawn again: on PostgreSQL the seat was
    already taken by the same statement, and the second draw must not take it again."""
    import booking.references as references

    slot = kit.slot(kit.offering(), capacity=3)
    first = _hold(client, kit.headers_for(kit.citizen_id()), slot.id)
    assert first.status_code == 201, first.get_json()
    taken = first.get_json()["reference"]
    draws = iter([taken, taken, "BK-ZZZZZ2"])
    monkeypatch.setattr(references, "new_reference", lambda: next(draws))
    second = _hold(client, kit.headers_for(kit.citizen_id()), slot.id)
    assert second.status_code == 201, second.get_json()
    assert second.get_json()["reference"] == "BK-ZZZZZ2"
    assert kit.slot_state(slot.id) == (2, 3)
    assert kit.seat_holders(slot.id) == 2


def test_a_hold_is_three_statements_and_a_confirm_two(client, kit, app, monkeypatch):
    """The slot with its offering, service and centre, and the account, locked (one read); the citizen's
    suspensions, bookings and the group's holders of the applicants (one read); then the seat, the
    booking, its applicant and its notification in one statement (SQLite: the seat UPDATE and three
    INSERTs). Confirming it: the booking read, then (PostgreSQL) its UPDATE with the notification in one
    statement, in autocommit (SQLite: the UPDATE, the notification, in a transaction)."""
    from sqlalchemy import event

    from app.extensions import db
    from booking.draws import forget_active_draws
    from tests.booking.queries import count_queries
    from tests.conftest import IS_POSTGRES

    # "No draw is running" is remembered for a second: on a loaded machine the requests below can be further
    # apart than that, and the re-read would be counted.
    monkeypatch.setitem(app.config, "ACTIVE_DRAWS_SECONDS", 3600)
    forget_active_draws()
    slot = kit.slot(kit.offering(), capacity=3)
    assert _hold(client, kit.headers_for(kit.citizen_id()), slot.id).status_code == 201  # compiled once
    headers = kit.headers_for(kit.citizen_id())
    with count_queries(app) as statements:
        held = _hold(client, headers, slot.id)
    assert held.status_code == 201, held.get_json()
    assert not IS_POSTGRES or ("LATERAL" in statements[0] and "FOR UPDATE" in statements[0]), statements[0]
    writes = [s.split()[0] for s in statements[2:]]
    assert writes == (["WITH"] if IS_POSTGRES else ["UPDATE", "INSERT", "INSERT", "INSERT"]), statements
    reference = held.get_json()["reference"]
    engine = kit.call(lambda: db.engine)
    transactions = []

    def began(conn) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            transactions.append("begin")

    event.listen(engine, "begin", began)
    try:
        with count_queries(app) as statements:
            confirmed = client.post(f"/api/v1/bookings/{reference}/confirm", headers=headers)
    finally:
        event.remove(engine, "begin", began)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert (len(statements), len(transactions)) == ((2, 0) if IS_POSTGRES else (3, 1)), statements
    assert confirmed.get_json()["status"] == "confirmed"

    def notices():
        booking_id = db.session.scalar(db.select(Booking.id).where(Booking.reference == reference))
        keys = [f"booking_held:{booking_id}", f"booking_confirmed:{booking_id}"]
        return sorted(
            db.session.scalars(db.select(Notification.kind).where(Notification.dedupe_key.in_(keys)))
        )

    assert kit.call(notices) == ["booking_confirmed", "booking_held"]


def test_a_full_slot_is_refused_without_waiting_for_the_account_lock(client, kit, app):
    """The slot's read locks the citizen's account only when the slot has the seats: a slot seen full is
    refused by a read that locks nothing, even while another command of the same citizen holds the lock
    (and a release day's refusals take no transaction id and write nothing)."""
    import threading

    from sqlalchemy import text

    from app.extensions import db
    from booking.models import Slot
    from tests.conftest import IS_POSTGRES

    slot = kit.slot(kit.offering(), capacity=1)
    kit.call(
        lambda: (
            db.session.execute(db.update(Slot).where(Slot.id == slot.id).values(booked=1)),
            db.session.commit(),
        )
    )
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    if not IS_POSTGRES:  # no row locks on SQLite
        assert _hold(client, headers, slot.id).status_code == 409
        return
    with app.app_context():
        engine = db.engine
    answers = []
    with engine.connect() as other:
        other.execute(text("SELECT id FROM accounts WHERE id = :id FOR UPDATE"), {"id": citizen})
        worker = threading.Thread(target=lambda: answers.append(_hold(client, headers, slot.id)))
        worker.start()
        worker.join(30)
        blocked = worker.is_alive()
        other.rollback()
    worker.join(30)
    assert not blocked, "the refusal waited for the account's lock"
    assert answers[0].status_code == 409, answers[0].get_json()
    assert answers[0].get_json()["error"]["code"] == "slot_full"
