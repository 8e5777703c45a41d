"""Availability answered without marshmallow: the same bytes as the documented schema."""

import datetime as dt

from app import clock
from booking import availability, services
from booking.schemas import AvailableSlotSchema

US_WEEK = {d: [["09:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def _search(client, offering, headers=None, **params):
    query = "&".join(f"{k}={v}" for k, v in {"service": offering.service_code, **params}.items())
    return client.get(f"/api/v1/centres/{offering.centre_id}/slots?{query}", headers=headers or {})


def _schema_bytes(app, offering, **kw) -> bytes:
    """What `AvailableSlotSchema(many=True)` dumped through the app's JSON provider gives."""
    with app.app_context():
        slots = availability.list_available_slots(
            centre_id=offering.centre_id, service_code=offering.service_code, **kw
        )
        return app.json.response(AvailableSlotSchema(many=True).dump(slots)).get_data()


def test_answer_is_the_schemas_bytes_across_a_dst_change(app, client, make, kit):
    clock.travel_to(dt.datetime(2026, 10, 25, 12, 0, tzinfo=dt.UTC))
    centre = make.centre(
        id="embassy-washington", kind="embassy", timezone="America/New_York", weekly_hours=US_WEEK
    )
    offering = make.offering(centre, make.service(), slot_minutes=30, capacity=2)
    make.call(services.regenerate_slots, centre_id=centre.id)
    # Instants off the minute are written as isoformat writes them (seconds, microseconds).
    kit.slot(offering, start=dt.datetime(2026, 11, 3, 1, 2, 3, 456789, tzinfo=dt.UTC))
    kit.slot(offering, start=dt.datetime(2026, 11, 3, 1, 7, 9, tzinfo=dt.UTC))

    response = _search(client, offering, **{"from": "2026-10-30", "to": "2026-11-03"})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert {s["start"][-6:] for s in body} == {"-04:00", "-05:00"}
    assert "2026-11-02T20:02:03.456789-05:00" in [s["start"] for s in body]
    assert response.get_data() == _schema_bytes(
        app, offering, date_from=dt.date(2026, 10, 30), date_to=dt.date(2026, 11, 3)
    )
    assert _search(client, offering).get_data() == _schema_bytes(app, offering)


def test_the_schema_still_documents_the_answer(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    ok = spec["paths"]["/api/v1/centres/{centre_id}/slots"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["items"]["$ref"]
    fields = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert set(fields) == {"slot_id", "start", "end", "available", "timezone"}
