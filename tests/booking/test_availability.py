"""Availability: one query, never full, never inside the cut-off, never past the caller's horizon; slot
generation in the centre's zone (DST at embassy-washington) and regeneration on schedule changes."""

import datetime as dt

from sqlalchemy import select

from app import clock
from app.catalogue import services as catalogue
from app.extensions import db
from booking import services, slot_regeneration
from booking.models import Slot
from tests.booking.queries import US_WEEK, count_queries, search


def test_one_query_per_request_and_seats_left(app, client, kit):
    offering = kit.offering()
    slots = [kit.slot(offering, capacity=3, hours_ahead=24 + i) for i in range(5)]
    citizens = kit.citizens(3)
    for citizen in citizens:
        kit.call(services.hold_slot, account_id=citizen, slot_id=slots[0].id)  # full
    kit.call(services.hold_slot, account_id=kit.citizen_id(), slot_id=slots[1].id)
    headers = kit.headers_for(citizens[0])

    with count_queries(app) as statements:
        response = search(client, offering, headers)
    assert response.status_code == 200
    assert len(statements) == 1, statements
    body = response.get_json()
    assert [s["slot_id"] for s in body] == [s.id for s in slots[1:]]
    assert [s["available"] for s in body] == [2, 3, 3, 3]
    assert body[0]["timezone"] == "Asia/Amman"
    assert body[0]["start"].endswith("+03:00")

    with count_queries(app) as statements:
        assert search(client, offering).status_code == 200  # anonymous
    assert len(statements) == 1


def test_unknown_centre_or_service_is_404(client, kit):
    offering = kit.offering()
    assert client.get(f"/api/v1/centres/nowhere/slots?service={offering.service_code}").status_code == 404
    assert client.get(f"/api/v1/centres/{offering.centre_id}/slots?service=no.such").status_code == 404
    assert client.get(f"/api/v1/centres/{offering.centre_id}/slots").status_code == 422
    assert search(client, offering).get_json() == []


def test_cut_off_hides_and_refuses_slots_starting_too_soon(client, kit):
    offering = kit.offering()
    soon = kit.slot(offering, hours_ahead=0.5)
    later = kit.slot(offering, hours_ahead=1.5)
    citizen = kit.citizen_id()
    assert [s["slot_id"] for s in search(client, offering).get_json()] == [later.id]
    refused = client.post("/api/v1/bookings", json={"slot_id": soon.id}, headers=kit.headers_for(citizen))
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "outside_horizon"
    assert refused.get_json()["error"]["details"]["reason"] == "cutoff"


def test_resident_30_days_expatriate_90_days(client, kit):
    offering = kit.offering()
    near = kit.slot(offering, hours_ahead=24 * 29)
    far = kit.slot(offering, hours_ahead=24 * 60)
    beyond = kit.slot(offering, hours_ahead=24 * 91)
    resident = kit.citizen_id()
    expatriate = kit.citizen_id(residence_country="US")
    h_res, h_exp = kit.headers_for(resident), kit.headers_for(expatriate)

    assert [s["slot_id"] for s in search(client, offering).get_json()] == [near.id]
    assert [s["slot_id"] for s in search(client, offering, h_res).get_json()] == [near.id]
    assert [s["slot_id"] for s in search(client, offering, h_exp).get_json()] == [near.id, far.id]

    refused = client.post("/api/v1/bookings", json={"slot_id": far.id}, headers=h_res)
    assert refused.status_code == 422 and refused.get_json()["error"]["details"]["reason"] == "horizon"
    assert client.post("/api/v1/bookings", json={"slot_id": beyond.id}, headers=h_exp).status_code == 422
    assert client.post("/api/v1/bookings", json={"slot_id": far.id}, headers=h_exp).status_code == 201


def test_an_offering_horizon_shortens_everyones(client, kit):
    offering = kit.offering(horizon_days=7)
    week = kit.slot(offering, hours_ahead=24 * 6)
    kit.slot(offering, hours_ahead=24 * 8)
    expatriate = kit.citizen_id(residence_country="AE")
    assert [s["slot_id"] for s in search(client, offering, kit.headers_for(expatriate)).get_json()] == [
        week.id
    ]


def test_date_filters_use_centre_local_days(client, kit):
    offering = kit.offering()
    base = (clock.now() + dt.timedelta(days=3)).replace(
        hour=6, minute=0, second=0, microsecond=0
    )  # 09:00 +03
    first = kit.slot(offering, start=base)
    second = kit.slot(offering, start=base + dt.timedelta(days=1))
    day1 = base.date().isoformat()
    assert [s["slot_id"] for s in search(client, offering, **{"from": day1, "to": day1}).get_json()] == [
        first.id
    ]
    day2 = (base + dt.timedelta(days=1)).date().isoformat()
    assert [s["slot_id"] for s in search(client, offering, **{"from": day2}).get_json()] == [second.id]


def test_generation_sells_only_the_bookable_share_and_is_idempotent(rctx, kit, make):
    centre = make.centre(weekly_hours={"mon": [["08:00", "10:00"]], "tue": [["08:00", "10:00"]]})
    offering = make.offering(centre, make.service(), slot_minutes=30, capacity=4, walk_in_share=25)
    added = slot_regeneration.regenerate_slots(offering_id=offering.id)
    assert added > 0
    assert slot_regeneration.regenerate_slots(offering_id=offering.id) == 0
    slots = db.session.scalars(select(Slot).where(Slot.offering_id == offering.id)).all()
    assert {s.capacity for s in slots} == {3}
    local = {s.start.astimezone(dt.timezone(dt.timedelta(hours=3))).strftime("%a %H:%M") for s in slots}
    assert local <= {f"{d} {t}" for d in ("Mon", "Tue") for t in ("08:00", "08:30", "09:00", "09:30")}
    from booking.tasks import generate_slots

    assert generate_slots() == 0


def test_dst_at_embassy_washington_keeps_local_opening_hours(client, make, kit):
    clock.travel_to(dt.datetime(2026, 10, 25, 12, 0, tzinfo=dt.UTC))
    centre = make.centre(
        id="embassy-washington", kind="embassy", timezone="America/New_York", weekly_hours=US_WEEK
    )
    offering = make.offering(centre, make.service(), slot_minutes=30, capacity=2)
    make.call(slot_regeneration.regenerate_slots, centre_id=centre.id)

    before = search(client, offering, **{"from": "2026-10-30", "to": "2026-10-30"}).get_json()
    after = search(client, offering, **{"from": "2026-11-02", "to": "2026-11-02"}).get_json()
    assert before[0]["start"] == "2026-10-30T09:00:00-04:00"
    assert after[0]["start"] == "2026-11-02T09:00:00-05:00"
    assert before[-1]["end"] == "2026-10-30T16:00:00-04:00"
    assert after[-1]["end"] == "2026-11-02T16:00:00-05:00"
    assert len(before) == len(after) == 14
    assert before[0]["timezone"] == "America/New_York"
    # In UTC the opening moved by an hour: stored as instants, shown as local times.
    starts = make.call(
        lambda: sorted(
            s.start
            for s in db.session.scalars(select(Slot).where(Slot.offering_id == offering.id))
            if s.local_date in (dt.date(2026, 10, 30), dt.date(2026, 11, 2))
        )
    )
    assert starts[0].hour == 13 and starts[-1].hour == 20


def test_schedule_change_regenerates_free_slots_and_keeps_booked_ones(client, make, kit):
    centre = make.centre(weekly_hours={d: [["08:00", "10:00"]] for d in ("mon", "tue", "wed", "thu", "sun")})
    offering = make.offering(centre, make.service(), slot_minutes=60, capacity=2)
    make.call(slot_regeneration.regenerate_slots, offering_id=offering.id)
    slots = search(client, offering).get_json()
    target = slots[2]
    citizen = kit.citizen_id()
    booking = kit.call(services.hold_slot, account_id=citizen, slot_id=target["slot_id"])
    day = dt.date.fromisoformat(target["start"][:10])

    # Closing that day (the catalogue's own service sends schedule_changed): free slots go, the booked stays.
    make.call(catalogue.add_closure, centre.id, date=day, reason_en="Holiday", reason_ar="عطلة")
    remaining = search(client, offering).get_json()
    assert not [s for s in remaining if s["start"][:10] == day.isoformat()]
    kept = make.fresh(Slot, target["slot_id"])
    assert kept is not None and kept.booked == 1 and kept.open is False
    assert kit.bookings(reference=booking.reference)[0].status == "held"

    # New hours: one more slot per day, the old ones untouched.
    def widen():
        catalogue.update_centre(
            centre.id, weekly_hours={d: [["08:00", "11:00"]] for d in ("mon", "tue", "wed", "thu", "sun")}
        )

    make.call(widen)
    widened = search(client, offering).get_json()
    assert len(widened) > len(remaining)
    assert make.fresh(Slot, target["slot_id"]).booked == 1

    # A bigger capacity reaches future slots, booked or not.
    make.call(catalogue.update_offering, offering.id, capacity=5)
    assert {s["available"] for s in search(client, offering).get_json()} == {5}
    closed = make.fresh(Slot, target["slot_id"])
    assert (closed.open, closed.booked) == (False, 1)  # the closed day stays closed
