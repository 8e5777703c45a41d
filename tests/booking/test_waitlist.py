"""Waitlists (SPEC §9): joining and leaving, and freed seats handed to those who wait, never to open sale."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from booking import seats, services
from booking.models import Booking
from booking.release_models import WaitlistEntry
from booking.waitlist import join_waitlist
from notifications.models import Notification

AMMAN = zoneinfo.ZoneInfo("Asia/Amman")


def _day(days: int) -> dt.date:
    return clock.now().astimezone(AMMAN).date() + dt.timedelta(days=days)


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), AMMAN).astimezone(dt.UTC)


def _join(client, kit, citizen, offering, *, days=(1, 10), part="any", **headers):
    return client.post(
        "/api/v1/waitlist",
        json={
            "service": offering.service_code,
            "centre_id": offering.centre_id,
            "from": _day(days[0]).isoformat(),
            "to": _day(days[1]).isoformat(),
            "part_of_day": part,
        },
        headers={**kit.headers_for(citizen), **headers},
    )


def _count(kit, model, **where):
    return kit.call(lambda: db.session.scalar(select(func.count()).select_from(model).filter_by(**where)))


def _full_slot(kit, offering, *, capacity=1, day=3, hour=9):
    """A slot whose every seat is a confirmed booking; returns (slot, [(citizen, reference)])."""
    slot = kit.slot(offering, start=_at(_day(day), hour), capacity=capacity)
    holders = []
    for citizen in kit.citizens(capacity):
        booking = kit.call(services.hold_slot, account_id=citizen, slot_id=slot.id)
        kit.call(services.confirm_booking, account_id=citizen, reference=booking.reference)
        holders.append((citizen, booking.reference))
    return slot, holders


@pytest.fixture
def no_release_delay(app):
    app.config["CANCEL_RELEASE_DELAY_MINUTES"] = 0


def test_join_list_and_leave(client, kit):
    offering = kit.offering()
    first, second = kit.citizens(2)
    joined = _join(client, kit, first, offering, **{"Idempotency-Key": "w-1"})
    assert joined.status_code == 201, joined.get_json()
    body = joined.get_json()
    assert body["position"] == 1 and body["status"] == "waiting"
    replay = _join(client, kit, first, offering, **{"Idempotency-Key": "w-1"})
    assert replay.get_json()["waitlist_id"] == body["waitlist_id"]
    assert _join(client, kit, second, offering).get_json()["position"] == 2
    again = _join(client, kit, first, offering)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_waitlisted"

    listed = client.get("/api/v1/waitlist", headers=kit.headers_for(first)).get_json()
    assert [w["waitlist_id"] for w in listed] == [body["waitlist_id"]]
    other = client.delete(f"/api/v1/waitlist/{body['waitlist_id']}", headers=kit.headers_for(second))
    assert other.status_code == 404
    left = client.delete(f"/api/v1/waitlist/{body['waitlist_id']}", headers=kit.headers_for(first))
    assert left.status_code == 200 and left.get_json()["status"] == "left"
    assert client.get("/api/v1/waitlist", headers=kit.headers_for(second)).get_json()[0]["position"] == 1


def test_bad_waitlist_requests_write_nothing(client, kit):
    offering = kit.offering()
    citizen = kit.citizen_id()
    far = _join(client, kit, citizen, offering, days=(1, 60))
    assert far.status_code == 422 and "to" in far.get_json()["error"]["details"]["fields"]
    backwards = _join(client, kit, citizen, offering, days=(5, 2))
    assert backwards.status_code == 422
    drawn = kit.offering(allocation="draw")
    assert _join(client, kit, citizen, drawn).get_json()["error"]["code"] == "draw_allocation"
    passport = kit.offering(
        service_kw={"code": "passport.issue", "group": "passport", "eligibility": "passport_issue"}
    )
    refused = _join(client, kit, citizen, passport)
    assert (
        refused.status_code == 403
        and refused.get_json()["error"]["details"]["reason"] == "valid_passport_held"
    )
    assert _count(kit, WaitlistEntry) == 0


def test_a_cancelled_seat_goes_to_the_first_waiting_citizen_not_to_open_sale(client, kit, no_release_delay):
    offering = kit.offering()
    slot, [(holder, reference)] = _full_slot(kit, offering)
    first, second, stranger = kit.citizens(3)
    assert _join(client, kit, first, offering).status_code == 201
    assert _join(client, kit, second, offering).status_code == 201

    cancelled = client.post(f"/api/v1/bookings/{reference}/cancel", headers=kit.headers_for(holder))
    assert cancelled.status_code == 200

    offers = kit.bookings(account_id=first)
    assert [(b.status, b.slot_id) for b in offers] == [("held", slot.id)]
    minutes = (offers[0].hold_expires_at - clock.now()).total_seconds() / 60
    assert 119 <= minutes <= 120
    assert kit.bookings(account_id=second) == []
    assert kit.slot_state(slot.id) == (1, 1)
    # The seat is not on open sale: a stranger finds it full.
    refused = client.post("/api/v1/bookings", json={"slot_id": slot.id}, headers=kit.headers_for(stranger))
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "slot_full"
    mine = client.get("/api/v1/waitlist", headers=kit.headers_for(first)).get_json()[0]
    assert mine["status"] == "offered" and mine["reference"] == offers[0].reference
    kinds = kit.call(
        lambda: db.session.scalars(select(Notification.kind).where(Notification.account_id == first)).all()
    )
    assert "waitlist_offer" in kinds

    # The offer lapses: the next in line gets the seat.
    clock.shift(dt.timedelta(minutes=121))
    kit.call(seats.release_due_seats)
    assert [b.status for b in kit.bookings(account_id=first)] == ["expired"]
    assert [(b.status, b.slot_id) for b in kit.bookings(account_id=second)] == [("held", slot.id)]
    assert kit.slot_state(slot.id) == (1, 1)


def test_the_offer_respects_dates_and_part_of_day(client, kit, no_release_delay):
    offering = kit.offering()
    slot, [(holder, reference)] = _full_slot(kit, offering, day=3, hour=9)
    later, afternoon, fits = kit.citizens(3)
    _join(client, kit, later, offering, days=(5, 9))
    _join(client, kit, afternoon, offering, days=(1, 9), part="afternoon")
    _join(client, kit, fits, offering, days=(2, 4), part="morning")

    client.post(f"/api/v1/bookings/{reference}/cancel", headers=kit.headers_for(holder))

    assert kit.bookings(account_id=later) == [] and kit.bookings(account_id=afternoon) == []
    assert [b.slot_id for b in kit.bookings(account_id=fits)] == [slot.id]


def test_nobody_waiting_the_seat_returns_to_sale(client, kit, no_release_delay):
    offering = kit.offering()
    slot, [(holder, reference)] = _full_slot(kit, offering)
    client.post(f"/api/v1/bookings/{reference}/cancel", headers=kit.headers_for(holder))
    assert kit.slot_state(slot.id) == (0, 1)


def _cancel(args):
    citizen, reference = args
    return services.cancel_booking(account_id=citizen, reference=reference).status


@pytest.mark.postgres_only
def test_seats_freed_at_once_go_to_different_citizens_and_none_is_lost(kit, app):
    app.config["CANCEL_RELEASE_DELAY_MINUTES"] = 0
    offering = kit.offering()
    slots, holders = [], []
    for n in range(10):
        slot, held = _full_slot(kit, offering, capacity=2, day=2 + n % 5, hour=8 + n // 5)
        slots.append(slot)
        holders += held
    waiting = kit.citizens(12)
    for citizen in waiting:
        kit.call(
            join_waitlist,
            account_id=citizen,
            service_code=offering.service_code,
            centre_id=offering.centre_id,
            date_from=_day(1),
            date_to=_day(10),
        )

    results = kit.race(_cancel, holders, workers=20)  # 20 seats freed at once for 12 people waiting

    assert results == ["cancelled"] * 20
    offers = kit.call(
        lambda: db.session.execute(
            select(Booking.account_id, Booking.slot_id).where(Booking.waitlist_entry_id.is_not(None))
        ).all()
    )
    assert sorted(a for a, _ in offers) == sorted(waiting)  # every waiting citizen got one offer, none two
    assert _count(kit, WaitlistEntry, status="waiting") == 0
    # Seats: 12 offered, 8 back on sale; the counters match the bookings that hold a seat.
    for slot in slots:
        booked, capacity = kit.slot_state(slot.id)
        assert booked == kit.seat_holders(slot.id) <= capacity
    assert sum(kit.slot_state(s.id)[0] for s in slots) == 12


@pytest.mark.postgres_only
def test_a_cancel_racing_an_offer_lapse_never_loses_or_doubles_a_seat(kit, app):
    app.config["CANCEL_RELEASE_DELAY_MINUTES"] = 0
    offering = kit.offering()
    slot, holders = _full_slot(kit, offering, capacity=6)
    waiting = kit.citizens(6)
    for citizen in waiting:
        kit.call(
            join_waitlist,
            account_id=citizen,
            service_code=offering.service_code,
            centre_id=offering.centre_id,
            date_from=_day(1),
            date_to=_day(10),
        )
    # Three seats are offered to the first three; their offers lapse while the other three holders cancel.
    kit.race(_cancel, holders[:3], workers=3)
    clock.shift(dt.timedelta(minutes=121))

    def act(arg):
        if arg == "sweep":
            return seats.release_due_seats()
        return _cancel(arg)

    kit.race(act, ["sweep", *holders[3:], "sweep"], workers=5)

    booked, capacity = kit.slot_state(slot.id)
    assert booked == kit.seat_holders(slot.id) <= capacity
    offered_to = kit.call(
        lambda: db.session.scalars(
            select(Booking.account_id).where(Booking.waitlist_entry_id.is_not(None))
        ).all()
    )
    assert sorted(offered_to) == sorted(waiting)  # six seats freed in all: each waiting citizen one offer
    live = kit.call(
        lambda: db.session.scalar(
            select(func.count()).where(
                Booking.waitlist_entry_id.is_not(None),
                Booking.status == "held",
                Booking.hold_expires_at > clock.now(),
            )
        )
    )
    assert live == 3 and booked == 3


def test_seats_a_capacity_raise_adds_go_to_those_who_wait_first(client, kit):
    """The schedule gives a full slot more seats: the waiting citizen is offered one before open sale."""
    from app.catalogue.models import Offering
    from booking.models import Slot
    from booking.slot_regeneration import regenerate_slots

    offering = kit.offering()
    kit.call(regenerate_slots, offering_id=offering.id)
    slot = kit.call(
        lambda: db.session.scalars(
            select(Slot)
            .where(Slot.offering_id == offering.id, Slot.start > clock.now() + dt.timedelta(days=2))
            .order_by(Slot.start)
        ).first()
    )
    for citizen in kit.citizens(slot.capacity):
        booking = kit.call(services.hold_slot, account_id=citizen, slot_id=slot.id)
        kit.call(services.confirm_booking, account_id=citizen, reference=booking.reference)
    waiting, stranger = kit.citizens(2)
    day = slot.local_date.isoformat()
    joined = client.post(
        "/api/v1/waitlist",
        json={"service": offering.service_code, "centre_id": offering.centre_id, "from": day, "to": day},
        headers=kit.headers_for(waiting),
    )
    assert joined.status_code == 201
    before = kit.slot_state(slot.id)

    def raise_capacity():
        db.session.get(Offering, offering.id).capacity += 10
        db.session.commit()

    kit.call(raise_capacity)
    kit.call(regenerate_slots, offering_id=offering.id)

    # One offer, on a slot of the day asked for (every slot of that day gained seats: any may be first).
    offers = kit.bookings(account_id=waiting)
    assert [b.status for b in offers] == ["held"]
    offered_slot = kit.call(lambda: db.session.get(Slot, offers[0].slot_id))
    assert offered_slot.local_date == slot.local_date
    booked, capacity = kit.slot_state(slot.id)
    assert capacity > before[1]
    assert booked == before[0] + (1 if offered_slot.id == slot.id else 0)
    # The other added seats are on open sale.
    sold = client.post("/api/v1/bookings", json={"slot_id": slot.id}, headers=kit.headers_for(stranger))
    assert sold.status_code == 201
