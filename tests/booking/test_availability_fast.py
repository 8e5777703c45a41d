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


def test_seats_left_count_only_the_bookings_that_still_hold_one(client, kit):
    """A cancel past its delay and an expired hold are seats for sale (counted through the partial index of
    bookings that hold a seat); a cancel whose seat was released long ago is nothing, however many."""
    offering = kit.offering()
    slot = kit.slot(offering, capacity=4, hours_ahead=24 * 5)
    released, due, live, expired = kit.citizens(4)
    for citizen in (released, due):
        booking = kit.call(services.hold_slot, account_id=citizen, slot_id=slot.id)
        kit.call(services.confirm_booking, account_id=citizen, reference=booking.reference)
        kit.call(services.cancel_booking, account_id=citizen, reference=booking.reference)
        if citizen == released:
            clock.shift(dt.timedelta(minutes=31))
            from booking.tasks import expire_holds

            assert kit.call(expire_holds) == 1
    kit.call(services.hold_slot, account_id=expired, slot_id=slot.id)
    clock.shift(dt.timedelta(minutes=31))  # the second cancel's delay and the first hold are past
    kit.call(services.hold_slot, account_id=live, slot_id=slot.id)
    assert kit.slot_state(slot.id) == (3, 4)  # due, expired and live still hold theirs

    (answered,) = search(client, offering).get_json()
    assert answered["available"] == 4 - 3 + 2  # the due cancel and the expired hold count as free


def test_the_due_seat_count_reads_the_partial_index(app, client, kit):
    """The query names the index's predicate as the index has it, so PostgreSQL reads only bookings that
    hold a seat (the other index would read every cancelled booking the slot ever had)."""
    from sqlalchemy import event

    from app.extensions import db

    offering = kit.offering()
    kit.slot(offering, capacity=1)
    sent = []
    with app.app_context():
        engine = db.engine

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert search(client, offering).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    ((statement, parameters),) = sent
    with app.app_context():
        if engine.dialect.name != "postgresql":
            index = db.session.execute(
                db.text("SELECT sql FROM sqlite_master WHERE name = 'ix_bookings_slot_id_releasable'")
            ).scalar()
            assert "WHERE holds_seat AND status IN ('held', 'cancelled')" in index
            return
        definition = db.session.execute(
            db.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_bookings_slot_id_releasable'")
        ).scalar()
        assert "WHERE (holds_seat AND ((status)::text = ANY" in definition
        connection = db.session.connection()
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table is read whole otherwise
        plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
        db.session.rollback()
    assert "ix_bookings_slot_id_releasable" in plan
    assert "ix_bookings_slot_id_status" not in plan


def test_a_slot_whose_end_moves_is_answered_with_its_new_end(app, client, kit):
    """What a process keeps of a slot (its local times, written once) follows a schedule change."""
    offering = kit.offering()
    slot = kit.slot(offering, capacity=2)
    before = search(client, offering).get_json()[0]
    with app.app_context():
        from app.extensions import db

        db.session.execute(
            db.text('UPDATE slots SET "end" = :end WHERE id = :id'),
            {"end": slot.end + dt.timedelta(minutes=10), "id": slot.id},
        )
        db.session.commit()
    after = search(client, offering)
    assert after.get_json()[0]["end"] != before["end"]
    assert after.get_data() == _schema_bytes(app, offering)


def test_a_search_answered_from_its_own_connection_leaves_the_session_alone(app, kit):
    """The answer's search runs outside the request's session (autocommit on PostgreSQL): what the session
    writes afterwards is still one transaction, rolled back as one."""
    offering = kit.offering()
    kit.slot(offering)
    with app.test_request_context():
        from app.extensions import db
        from booking.models import Slot

        body, _ = availability.available_slots_json(
            centre_id=offering.centre_id, service_code=offering.service_code
        )
        assert json.loads(body)
        db.session.execute(db.text("UPDATE slots SET capacity = capacity + 1"))
        db.session.rollback()
        assert {s.capacity for s in db.session.query(Slot)} == {5}


def test_query_strings_load_alike_every_time_and_refusals_stay_refusals(client, kit):
    # Midday in Amman: the factory's slot takes its UTC date as its local day, which is the centre's own
    # only away from local midnight (a run at 00:05 there searched the wrong day).
    clock.travel_to(dt.datetime(2030, 5, 1, 9, 0, tzinfo=dt.UTC))
    offering = kit.offering()
    kit.slot(offering, hours_ahead=24 * 3)
    day = search(client, offering).get_json()[0]["start"][:10]  # the centre's local day
    for _ in range(2):
        assert len(search(client, offering, **{"from": day, "to": day}).get_json()) == 1
        refused = search(client, offering, **{"from": day, "to": "2000-01-01"})
        assert refused.status_code == 422
        assert "to" in refused.get_json()["error"]["details"]["fields"]["query"]
        assert search(client, offering, **{"from": "not-a-day"}).status_code == 422
        assert search(client, offering, **{"frm": day}).status_code == 422  # unknown parameter
