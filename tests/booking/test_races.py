"""Races on real threads (SQLite and PostgreSQL): the database, not Python, keeps seats and quotas right."""

import datetime as dt
import random

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.extensions import db
from booking import seats, services
from booking.errors import SlotFull
from booking.models import Booking, BookingApplicant, Slot


def _hold(account_slot):
    account_id, slot_id = account_slot
    return services.hold_slot(account_id=account_id, slot_id=slot_id).reference


def test_200_concurrent_holds_on_5_seats_take_exactly_5(kit):
    slot = kit.slot(kit.offering(), capacity=5)
    citizens = kit.citizens(200)

    results = kit.race(_hold, [(c, slot.id) for c in citizens], workers=200)

    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if not isinstance(r, str)]
    assert len(won) == 5
    assert all(isinstance(r, SlotFull) for r in lost), {type(r).__name__ for r in lost}
    assert kit.slot_state(slot.id) == (5, 5)
    assert len(kit.bookings(slot_id=slot.id, status="held")) == 5
    assert kit.seat_holders(slot.id) == 5


def test_50_concurrent_holds_by_one_citizen_give_at_most_one(kit):
    offering = kit.offering()
    slots = [kit.slot(offering, capacity=3, hours_ahead=24 + i) for i in range(50)]
    citizen = kit.citizen_id()

    results = kit.race(_hold, [(citizen, s.id) for s in slots], workers=50)

    assert len([r for r in results if isinstance(r, str)]) == 1
    assert {r.code for r in results if not isinstance(r, str)} <= {"hold_limit", "active_booking_exists"}
    assert len(kit.bookings(account_id=citizen)) == 1
    booked = kit.call(lambda: db.session.scalar(select(func.sum(Slot.booked))))
    assert booked == 1


def _move(args):
    account_id, reference, slot_ids, seed = args
    rng = random.Random(seed)
    outcomes = []
    for _ in range(4):
        try:
            services.reschedule_booking(
                account_id=account_id, reference=reference, slot_id=rng.choice(slot_ids)
            )
            outcomes.append("moved")
        except Exception as error:  # AppError codes are asserted below
            outcomes.append(getattr(error, "code", type(error).__name__))
    return outcomes


def test_concurrent_reschedules_never_lose_or_double_a_seat(kit):
    offering = kit.offering()
    slots = [kit.slot(offering, capacity=2, hours_ahead=24 + i) for i in range(6)]
    slot_ids = [s.id for s in slots]
    citizens = kit.citizens(8)
    bookings = []
    for n, citizen in enumerate(citizens):
        ref = kit.call(services.hold_slot, account_id=citizen, slot_id=slot_ids[n % 6])
        kit.call(services.confirm_booking, account_id=citizen, reference=ref.reference)
        bookings.append((citizen, ref.reference))

    results = kit.race(
        _move, [(c, ref, slot_ids, seed) for seed, (c, ref) in enumerate(bookings)], workers=len(bookings)
    )

    codes = {code for outcome in results for code in outcome}
    assert codes <= {"moved", "slot_full", "same_slot"}, codes
    assert "moved" in codes

    def state():
        rows = db.session.execute(select(Slot.id, Slot.booked, Slot.capacity).where(Slot.id.in_(slot_ids)))
        holders = dict(
            db.session.execute(
                select(Booking.slot_id, func.count())
                .where(Booking.holds_seat.is_(True))
                .group_by(Booking.slot_id)
            ).all()
        )
        return [(r.booked, holders.get(r.id, 0), r.capacity) for r in rows]

    for booked, holders, capacity in kit.call(state):
        assert booked == holders <= capacity
    assert sum(b for b, _, _ in kit.call(state)) == len(bookings)


def test_concurrent_holds_and_expiry_sweeps_keep_the_count(kit):
    """Holds racing with lazy releases of expired holds and the sweep: every seat is freed exactly once."""
    slot = kit.slot(kit.offering(), capacity=4)
    first = kit.citizens(4)
    for citizen in first:
        kit.call(services.hold_slot, account_id=citizen, slot_id=slot.id)
    clock.shift(dt.timedelta(seconds=301))
    later = kit.citizens(20)

    def act(arg):
        if arg is None:
            return seats.release_due_seats()
        return _hold((arg, slot.id))

    results = kit.race(act, [*later[:10], None, None, None, *later[10:]], workers=23)

    assert len([r for r in results if isinstance(r, str)]) == 4
    assert kit.slot_state(slot.id) == (4, 4)
    assert kit.seat_holders(slot.id) == 4
    assert {b.status for b in kit.bookings(slot_id=slot.id) if b.account_id in first} == {"expired"}


def test_http_race_30_threads_5_seats(app, kit):
    slot = kit.slot(kit.offering(), capacity=5)
    citizens = kit.citizens(30)
    headers = {c: kit.headers_for(c) for c in citizens}

    def post(citizen):
        client = app.test_client()
        response = client.post("/api/v1/bookings", json={"slot_id": slot.id}, headers=headers[citizen])
        return response.status_code, (response.get_json() or {}).get("error", {}).get("code")

    results = kit.race(post, citizens, workers=30)

    assert sorted(s for s, _ in results).count(201) == 5
    assert {(s, c) for s, c in results if s != 201} == {(409, "slot_full")}
    assert kit.slot_state(slot.id) == (5, 5)


def test_idempotent_replays_under_concurrency_create_one_booking(app, kit):
    slot = kit.slot(kit.offering(), capacity=5)
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen, **{"Idempotency-Key": "hold-once-7"})

    def post(_):
        response = app.test_client().post("/api/v1/bookings", json={"slot_id": slot.id}, headers=headers)
        body = response.get_json()
        return response.status_code, body.get("reference") or body["error"]["code"]

    results = kit.race(post, range(20), workers=20)

    statuses = {s for s, _ in results}
    assert statuses <= {201, 409}, results
    references = {r for s, r in results if s == 201}
    assert len(references) == 1
    assert {r for s, r in results if s == 409} <= {"idempotency_in_progress"}
    assert len(kit.bookings(account_id=citizen)) == 1
    assert kit.slot_state(slot.id) == (1, 5)
    # A later replay answers the first response.
    replay = app.test_client().post("/api/v1/bookings", json={"slot_id": slot.id}, headers=headers)
    assert replay.status_code == 201 and replay.get_json()["reference"] in references
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_database_constraints_back_the_rules(rctx, kit):
    """Even a write that skipped every Python check cannot oversell or double a quota."""
    slot = kit.slot(kit.offering(), capacity=1)
    citizen = kit.citizen_id()
    services.hold_slot(account_id=citizen, slot_id=slot.id)
    with pytest.raises(IntegrityError):
        db.session.execute(update(Slot).where(Slot.id == slot.id).values(booked=2))
    db.session.rollback()
    first = db.session.scalar(select(Booking).where(Booking.account_id == citizen))
    twin = Booking(
        reference="BK-TWIN22",
        account_id=citizen,
        slot_id=slot.id,
        offering_id=first.offering_id,
        centre_id=first.centre_id,
        service_code=first.service_code,
        service_group="other",
        kind="regular",
        status="held",
        holds_seat=False,
    )
    db.session.add(twin)
    with pytest.raises(IntegrityError, match=r"(?i)hold|unique"):
        db.session.flush()
    db.session.rollback()
    twin.status, twin.service_group = "confirmed", first.service_group
    db.session.add(twin)
    db.session.flush()
    # One active booking per group is per person (SPEC §10): the rule is on the applicant rows.
    person = first.applicants[0]
    db.session.add(
        BookingApplicant(
            booking_id=twin.id,
            position=1,
            national_id=person.national_id,
            full_name_ar=person.full_name_ar,
            full_name_en=person.full_name_en,
            date_of_birth=person.date_of_birth,
            service_group=first.service_group,
            active=True,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
