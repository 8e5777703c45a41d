"""Availability answered without marshmallow and kept for a moment in Redis: the same bytes as the
documented schema, a micro-cache keyed by everything the answer depends on, off when set to 0."""

import datetime as dt
import json
import time

from app import clock
from app.redis_client import get_redis
from booking import availability, services, slot_regeneration
from booking.schemas import AvailableSlotSchema
from tests.booking.queries import US_WEEK, count_queries, search


def _cached_answers(app) -> list[str]:
    with app.app_context():
        keys = get_redis().scan_iter(f"{availability.CACHE_PREFIX}*")
        return sorted(k for k in keys if ":expatriates:" not in k and not k.endswith(":young"))


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
    make.call(slot_regeneration.regenerate_slots, centre_id=centre.id)
    # Instants off the minute are written as isoformat writes them (seconds, microseconds).
    kit.slot(offering, start=dt.datetime(2026, 11, 3, 1, 2, 3, 456789, tzinfo=dt.UTC))
    kit.slot(offering, start=dt.datetime(2026, 11, 3, 1, 7, 9, tzinfo=dt.UTC))

    response = search(client, offering, **{"from": "2026-10-30", "to": "2026-11-03"})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert {s["start"][-6:] for s in body} == {"-04:00", "-05:00"}
    assert "2026-11-02T20:02:03.456789-05:00" in [s["start"] for s in body]
    assert response.get_data() == _schema_bytes(
        app, offering, date_from=dt.date(2026, 10, 30), date_to=dt.date(2026, 11, 3)
    )
    assert search(client, offering).get_data() == _schema_bytes(app, offering)


def test_the_schema_still_documents_the_answer(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    ok = spec["paths"]["/api/v1/centres/{centre_id}/slots"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["items"]["$ref"]
    fields = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert set(fields) == {"slot_id", "start", "end", "available", "timezone"}


def test_off_by_default_in_tests_every_answer_is_fresh(app, client, kit):
    assert app.config["AVAILABILITY_CACHE_SECONDS"] == 0
    offering = kit.offering()
    slot = kit.slot(offering, capacity=2)
    assert search(client, offering).get_json()[0]["available"] == 2
    kit.call(services.hold_slot, account_id=kit.citizen_id(), slot_id=slot.id)
    assert search(client, offering).get_json()[0]["available"] == 1
    assert _cached_answers(app) == []


def test_cached_answer_is_reused_without_the_database_until_it_expires(app, client, kit):
    app.config["AVAILABILITY_CACHE_SECONDS"] = 60
    offering = kit.offering()
    slot = kit.slot(offering, capacity=3)
    headers = kit.headers_for(kit.citizen_id())

    with count_queries(app) as statements:
        assert search(client, offering, headers).get_json()[0]["available"] == 3
    assert len(statements) == 2  # the horizons of a block of citizens, then the slots
    kit.call(services.hold_slot, account_id=kit.citizen_id(), slot_id=slot.id)
    with count_queries(app) as statements:
        again = search(client, offering, headers)
    assert statements == []
    assert again.get_json()[0]["available"] == 3  # up to AVAILABILITY_CACHE_SECONDS old
    (key,) = _cached_answers(app)
    with app.app_context():
        assert 0 < get_redis().pttl(key) <= 60_000
        assert 0 < get_redis().pttl(key + ":young") <= 30_000

        # Half-way, one request refreshes it; while another one is doing so, the rest serve the old answer.
        get_redis().delete(key + ":young")
        get_redis().set(key + ":young", 1, px=30_000, nx=True)
    assert search(client, offering, headers).get_json()[0]["available"] == 3
    with app.app_context():
        get_redis().delete(key + ":young")
    with count_queries(app) as statements:
        assert search(client, offering, headers).get_json()[0]["available"] == 2
    assert len(statements) == 1
    assert search(client, offering, headers).get_json()[0]["available"] == 2

    # Past the setting, the answer is gone: a short one shows the database answers again.
    app.config["AVAILABILITY_CACHE_SECONDS"] = 1
    with app.app_context():
        get_redis().delete(key)
    assert search(client, offering, headers).get_json()[0]["available"] == 2
    kit.call(services.hold_slot, account_id=kit.citizen_id(), slot_id=slot.id)
    kit.call(services.hold_slot, account_id=kit.citizen_id(), slot_id=slot.id)
    time.sleep(1.2)
    assert search(client, offering, headers).get_json() == []


def test_answers_are_kept_per_horizon_and_per_query(app, client, kit):
    app.config["AVAILABILITY_CACHE_SECONDS"] = 60
    offering = kit.offering()
    near = kit.slot(offering, hours_ahead=24 * 3)
    far = kit.slot(offering, hours_ahead=24 * 60)
    resident = kit.headers_for(kit.citizen_id())
    expatriate = kit.headers_for(kit.citizen_id(residence_country="US"))
    day = (clock.now() + dt.timedelta(days=3)).date().isoformat()

    for _ in range(2):
        assert [s["slot_id"] for s in search(client, offering).get_json()] == [near.id]
        assert [s["slot_id"] for s in search(client, offering, resident).get_json()] == [near.id]
        assert [s["slot_id"] for s in search(client, offering, expatriate).get_json()] == [near.id, far.id]
        assert search(client, offering, **{"from": "2000-01-01", "to": "2000-01-02"}).get_json() == []
        assert len(search(client, offering, **{"to": day}).get_json()) <= 1
    keys = _cached_answers(app)
    assert len(keys) == 4
    assert {json.loads(k[len(availability.CACHE_PREFIX) :])[-1] for k in keys} == {"resident", "expatriate"}

    # Known citizens and anonymous callers are then answered from Redis alone.
    with count_queries(app) as statements:
        for headers in (None, resident, expatriate):
            assert search(client, offering, headers).status_code == 200
    assert statements == []


def test_unknown_offerings_are_not_cached(app, client, kit):
    app.config["AVAILABILITY_CACHE_SECONDS"] = 60
    offering = kit.offering()
    for _ in range(2):
        assert client.get(f"/api/v1/centres/{offering.centre_id}/slots?service=no.such").status_code == 404
    assert _cached_answers(app) == []


def test_horizons_are_read_for_a_block_of_citizens_at_once(app, client, kit):
    app.config["AVAILABILITY_CACHE_SECONDS"] = 60
    offering = kit.offering()
    near = kit.slot(offering, hours_ahead=24 * 3)
    far = kit.slot(offering, hours_ahead=24 * 60)
    resident = kit.headers_for(kit.citizen_id())
    expatriate = kit.headers_for(kit.citizen_id(residence_country="US"))

    with count_queries(app) as statements:
        assert [s["slot_id"] for s in search(client, offering, resident).get_json()] == [near.id]
    assert len(statements) == 2  # the block's horizons, the slots
    with count_queries(app) as statements:
        body = search(client, offering, expatriate).get_json()
    assert [s["slot_id"] for s in body] == [near.id, far.id]
    assert len(statements) == 1  # the slots within the expatriate horizon; the block was known

    # A citizen registered after the block was read is past its last id: the block is read again.
    newcomer = kit.headers_for(kit.citizen_id(residence_country="AE"))
    with count_queries(app) as statements:
        body = search(client, offering, newcomer).get_json()
    assert [s["slot_id"] for s in body] == [near.id, far.id]
    assert len(statements) == 1
