"""Calendar files, object-level authorisation on every booking route, and the documented API."""

import datetime as dt

import icalendar

from tests.authz import assert_forbidden, assert_hidden_from, assert_needs_auth

US_WEEK = {d: [["09:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def _booking(client, kit, offering, citizen, **slot_kw):
    headers = kit.headers_for(citizen)
    slot = kit.slot(offering, **slot_kw)
    ref = client.post("/api/v1/bookings", json={"slot_id": slot.id}, headers=headers).get_json()["reference"]
    client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers)
    return ref, slot, headers


def test_calendar_file_in_the_centres_zone(client, kit, make):
    centre = make.centre(
        id="embassy-washington",
        kind="embassy",
        timezone="America/New_York",
        weekly_hours=US_WEEK,
        address_en="3504 International Drive NW, Washington, DC",
        address_ar="3504 إنترناشونال درايف، واشنطن",
    )
    offering = make.offering(centre, make.service(), slot_minutes=30)
    start = dt.datetime(2026, 12, 3, 14, 0, tzinfo=dt.UTC)  # 09:00 EST
    from app import clock

    clock.travel_to(dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC))
    citizen = kit.citizen_id()
    ref, _, headers = _booking(client, kit, offering, citizen, start=start)

    response = client.get(f"/api/v1/bookings/{ref}/calendar.ics", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert ref in response.headers["Content-Disposition"]
    cal = icalendar.Calendar.from_ical(response.data)
    event = next(iter(cal.walk("VEVENT")))
    assert str(event["UID"]) == f"{ref}@sanad-booking"
    assert ref in str(event["SUMMARY"]) and ref in str(event["DESCRIPTION"])
    assert "International Drive" in str(event["LOCATION"])
    begins = event.decoded("DTSTART")
    assert begins == start and begins.utcoffset() == dt.timedelta(hours=-5)
    assert str(begins.tzinfo) == "America/New_York"
    assert event.decoded("DTEND") - begins == dt.timedelta(minutes=30)
    assert b"TZID=America/New_York" in response.data
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["America/New_York"]
    again = client.get(f"/api/v1/bookings/{ref}/calendar.ics", headers=headers)
    assert next(iter(icalendar.Calendar.from_ical(again.data).walk("VEVENT")))["UID"] == event["UID"]


def test_another_citizen_gets_404_on_every_booking_route(client, kit, make):
    offering = kit.offering()
    owner, stranger = kit.citizens(2)
    ref, _, _ = _booking(client, kit, offering, owner)
    other_slot = kit.slot(offering)
    routes = [
        ("GET", f"/api/v1/bookings/{ref}"),
        ("POST", f"/api/v1/bookings/{ref}/confirm"),
        ("POST", f"/api/v1/bookings/{ref}/cancel"),
        ("POST", f"/api/v1/bookings/{ref}/reschedule", {"slot_id": other_slot.id}),
        ("GET", f"/api/v1/bookings/{ref}/calendar.ics"),
    ]
    assert_hidden_from(client, routes, kit.headers_for(stranger))
    assert_hidden_from(client, [("GET", "/api/v1/bookings/BK-ZZZZZZ")], kit.headers_for(owner))
    listed = client.get("/api/v1/bookings", headers=kit.headers_for(stranger))
    assert listed.status_code == 200 and listed.get_json() == []
    assert_needs_auth(
        client, [*routes, ("GET", "/api/v1/bookings"), ("POST", "/api/v1/bookings", {"slot_id": 1})]
    )
    staff = make.staff(make.centre())
    assert_forbidden(
        client, [*routes, ("POST", "/api/v1/bookings", {"slot_id": other_slot.id})], make.headers(staff)
    )
    admin_routes = [
        ("GET", "/api/v1/admin/abuse-events"),
        ("GET", "/api/v1/admin/citizens/123/suspensions"),
        ("POST", "/api/v1/admin/citizens/123/lift-suspension"),
    ]
    assert_forbidden(client, admin_routes, kit.headers_for(owner))
    assert_needs_auth(client, admin_routes)
    # The owner's booking is untouched by all of that.
    assert (
        client.get(f"/api/v1/bookings/{ref}", headers=kit.headers_for(owner)).get_json()["status"]
        == "confirmed"
    )


def test_booking_endpoints_are_documented(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    for path in (
        "/api/v1/centres/{centre_id}/slots",
        "/api/v1/bookings",
        "/api/v1/bookings/{reference}",
        "/api/v1/bookings/{reference}/confirm",
        "/api/v1/bookings/{reference}/cancel",
        "/api/v1/bookings/{reference}/reschedule",
        "/api/v1/bookings/{reference}/calendar.ics",
        "/api/v1/admin/abuse-events",
        "/api/v1/admin/citizens/{national_id}/suspensions",
        "/api/v1/admin/citizens/{national_id}/lift-suspension",
    ):
        assert path in paths, path
    hold = paths["/api/v1/bookings"]["post"]
    assert "201" in hold["responses"]
    assert any(p["name"] == "Idempotency-Key" for p in hold.get("parameters", []))


def test_the_booking_qr_is_an_svg_of_its_reference_for_its_citizen_only(client, kit, make):
    from app.qr import qr_svg

    offering = make.offering()
    citizen, other = kit.citizen_id(), kit.citizen_id()
    ref, _, headers = _booking(client, kit, offering, citizen)
    answer = client.get(f"/api/v1/bookings/{ref}/qr.svg", headers=headers)
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
    assert answer.get_data(as_text=True) == qr_svg(ref)  # the kiosk's scanner reads the reference itself
    assert answer.get_data(as_text=True).startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    refused = client.get(f"/api/v1/bookings/{ref}/qr.svg", headers=kit.headers_for(other))
    assert refused.status_code == 404
    assert client.get(f"/api/v1/bookings/{ref}/qr.svg").status_code == 401
