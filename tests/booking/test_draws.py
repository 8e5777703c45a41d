"""Draws (SPEC §9): creation, entries, the verifiable lottery and its result, and resuming a broken draw."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import zoneinfo

import pytest
from sqlalchemy import func, select

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from app.idempotency import IdempotencyKey
from booking import draw_entries, draw_run
from booking.models import Booking, BookingSuspension, Slot
from booking.release_models import Draw, DrawEntry
from notifications.models import Notification

AMMAN = zoneinfo.ZoneInfo("Asia/Amman")


def _local_day(days: int) -> dt.date:
    return clock.now().astimezone(AMMAN).date() + dt.timedelta(days=days)


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), AMMAN).astimezone(dt.UTC)


class Release:
    """An offering given by draws, slots on its draw days, an admin, and helpers to drive the API."""

    def __init__(
        self, client, kit, make, *, service_kw=None, seats_per_slot=2, days=(3, 4), hours=(9, 10, 13)
    ):
        self.client, self.kit, self.make = client, kit, make
        self.offering = kit.offering(allocation="draw", service_kw=service_kw or {})
        self.slots = []
        for day in days:
            for hour in hours:
                start = _at(_local_day(day), hour)
                slot = kit.call(_make_slot, self.offering.id, start, seats_per_slot, _local_day(day))
                self.slots.append(slot)
        self.days = (_local_day(days[0]), _local_day(days[-1]))
        self.admin = make.account("admin")
        self.admin_headers = make.headers(self.admin)

    def create(self, **overrides):
        body = {
            "centre_id": self.offering.centre_id,
            "service": self.offering.service_code,
            "days_from": self.days[0].isoformat(),
            "days_to": self.days[1].isoformat(),
            "entries_open_at": (clock.now() - dt.timedelta(hours=1)).isoformat(),
            "entries_close_at": (clock.now() + dt.timedelta(hours=2)).isoformat(),
            "confirm_hours": 24,
        }
        body.update(overrides)
        return self.client.post("/api/v1/admin/draws", json=body, headers=self.admin_headers)

    def enter(self, draw_id, citizen, part="any", **headers):
        return self.client.post(
            f"/api/v1/draws/{draw_id}/entries",
            json={"part_of_day": part},
            headers={**self.kit.headers_for(citizen), **headers},
        )

    def run(self, draw_id):
        return self.client.post(f"/api/v1/admin/draws/{draw_id}/run", headers=self.admin_headers)


def _make_slot(offering_id, start, capacity, local_date):
    slot = Slot(
        offering_id=offering_id,
        start=start,
        end=start + dt.timedelta(minutes=20),
        local_date=local_date,
        capacity=capacity,
        booked=0,
        open=True,
    )
    db.session.add(slot)
    db.session.commit()
    return slot


@pytest.fixture
def release(client, kit, make):
    return Release(client, kit, make)


def _count(kit, model, **where):
    return kit.call(lambda: db.session.scalar(select(func.count()).select_from(model).filter_by(**where)))


def recompute(result: dict) -> list[tuple[str, int]]:
    """What any reader does with the published result: check the seed, sort, and walk the seats."""
    seed = bytes.fromhex(result["seed"])
    assert hashlib.sha256(seed).hexdigest() == result["seed_commitment"]
    tokens = [e["entry_token"] for e in result["entries"]]
    order = sorted(tokens, key=lambda t: hmac.new(seed, t.encode(), hashlib.sha256).hexdigest())
    assert order == result["order"]
    part = {e["entry_token"]: e["part_of_day"] for e in result["entries"]}
    excluded = {e["entry_token"] for e in result["excluded"]}
    left = [[s["slot_id"], s["part_of_day"], s["seats"]] for s in result["seats"]]
    out = []
    for token in order:
        if token in excluded:
            continue
        for seat in left:
            if seat[2] > 0 and part[token] in ("any", seat[1]):
                seat[2] -= 1
                out.append((token, seat[0]))
                break
    return out


def test_admin_creates_a_draw_with_a_commitment_and_an_audit_entry(release, kit, client, make):
    created = release.create()
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["status"] == "open" and body["seed"] is None
    assert len(body["seed_commitment"]) == 64
    assert body["seats"] == 12 and body["entries"] == 0
    assert body["days_from"] == release.days[0].isoformat()
    seed = kit.call(lambda: db.session.get(Draw, body["draw_id"]).seed)
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == body["seed_commitment"]
    audit = kit.call(
        lambda: db.session.scalars(select(AuditEntry.action).where(AuditEntry.subject_type == "draw")).all()
    )
    assert audit == ["draw.create"]

    citizen = kit.citizen_id()
    listed = client.get("/api/v1/draws", headers=kit.headers_for(citizen))
    assert listed.status_code == 200 and [d["draw_id"] for d in listed.get_json()] == [body["draw_id"]]
    one = client.get(f"/api/v1/draws/{body['draw_id']}", headers=kit.headers_for(citizen))
    assert one.status_code == 200 and one.get_json()["seed"] is None


def test_bad_draws_are_refused_and_write_nothing(release, kit, client, make):
    citizen = kit.citizen_id()
    assert (
        release.client.post(
            "/api/v1/admin/draws", json={"centre_id": "x", "service": "a.b"}, headers=kit.headers_for(citizen)
        ).status_code
        == 403
    )
    far = release.create(days_to=_local_day(45).isoformat())
    assert far.status_code == 422 and "days_to" in far.get_json()["error"]["details"]["fields"]
    past = release.create(days_from=_local_day(0).isoformat())
    assert past.status_code == 422 and "days_from" in past.get_json()["error"]["details"]["fields"]
    assert release.create().status_code == 201
    overlapping = release.create(days_from=release.days[1].isoformat(), days_to=_local_day(6).isoformat())
    assert overlapping.status_code == 422, overlapping.get_json()
    assert "draw_id" in overlapping.get_json()["error"]["details"]
    first_come = kit.offering()
    refused = release.create(centre_id=first_come.centre_id, service=first_come.service_code)
    assert refused.status_code == 422 and "service" in refused.get_json()["error"]["details"]["fields"]
    assert _count(kit, Draw) == 1
    assert _count(kit, AuditEntry) == 1


def test_entries_one_per_person_idempotent_and_refused_after_close(release, kit, client):
    draw_id = release.create().get_json()["draw_id"]
    citizen = kit.citizen_id()

    first = release.enter(draw_id, citizen, "morning", **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["status"] == "entered" and len(body["entry_token"]) == 32 and body["part_of_day"] == "morning"
    replay = release.enter(draw_id, citizen, "morning", **{"Idempotency-Key": "k-1"})
    assert replay.status_code == 201 and replay.get_json()["entry_id"] == body["entry_id"]
    second = release.enter(draw_id, citizen)
    assert second.status_code == 409 and second.get_json()["error"]["code"] == "already_entered"
    assert _count(kit, DrawEntry) == 1

    mine = client.get("/api/v1/me/draw-entries", headers=kit.headers_for(citizen))
    assert [e["status"] for e in mine.get_json()] == ["entered"]
    assert client.get(f"/api/v1/draws/{draw_id}", headers=kit.headers_for(citizen)).get_json()["entries"] == 1

    clock.shift(dt.timedelta(hours=3))
    late = release.enter(draw_id, kit.citizen_id())
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "draw_closed"
    assert _count(kit, DrawEntry) == 1


def test_ineligible_or_suspended_or_already_booked_citizens_are_refused_with_the_reason(client, kit, make):
    release = Release(
        client,
        kit,
        make,
        service_kw={"code": "passport.issue", "group": "passport", "eligibility": "passport_issue"},
    )
    draw_id = release.create().get_json()["draw_id"]
    holder = kit.citizen_id()  # holds a valid passport: may not apply for a first one
    refused = release.enter(draw_id, holder)
    assert refused.status_code == 403, refused.get_json()
    assert refused.get_json()["error"]["code"] == "not_eligible"
    assert refused.get_json()["error"]["details"]["reason"] == "valid_passport_held"
    assert _count(kit, DrawEntry) == 0

    other = kit.offering(service_kw={"code": "passport.renew", "group": "passport"})
    slot = kit.slot(other)
    applicant = kit.citizen_id(passport_expiry=None)
    from booking import services

    kit.call(services.hold_slot, account_id=applicant, slot_id=slot.id)
    busy = release.enter(draw_id, applicant)
    assert busy.status_code == 409 and busy.get_json()["error"]["code"] == "active_booking_exists"
    assert _count(kit, DrawEntry) == 0


def _suspend(account_id, scope, until):
    db.session.add(BookingSuspension(account_id=account_id, kind="no_show", scope=scope, until=until))
    db.session.commit()


def test_each_thing_in_the_way_of_an_entry_refuses_it_with_its_details(client, kit, make):
    """What the entry's one read finds in the way — a suspension in force in scope, a live entry of another
    undrawn draw of the group — refuses with the same details as the checks made one by one; a suspension
    out of scope or lifted, or an entry of a drawn draw, does not."""
    release = Release(client, kit, make, service_kw={"code": "passport.renew", "group": "passport"})
    draw_id = release.create().get_json()["draw_id"]
    later = clock.now() + dt.timedelta(days=3)

    suspended = kit.citizen_id()
    kit.call(_suspend, suspended, "all", later)
    refused = release.enter(draw_id, suspended)
    assert refused.status_code == 403, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "booking_suspended" and error["details"]["scope"] == "all"

    # The service is not high-demand: a high-demand suspension does not keep its holder out.
    out_of_scope = kit.citizen_id()
    kit.call(_suspend, out_of_scope, "high_demand", later)
    assert release.enter(draw_id, out_of_scope).status_code == 201

    # A suspension that ended does not either.
    ended = kit.citizen_id()
    kit.call(_suspend, ended, "all", clock.now() - dt.timedelta(minutes=1))
    assert release.enter(draw_id, ended).status_code == 201
    assert _count(kit, DrawEntry) == 2

    # Entered in another undrawn draw of the same group (another centre's offering): in the way.
    other = Release(client, kit, make, service_kw={"code": "passport.issue", "group": "passport"})
    other_draw = other.create().get_json()["draw_id"]
    both = kit.citizen_id()
    assert other.enter(other_draw, both).status_code == 201
    twice = release.enter(draw_id, both)
    assert twice.status_code == 409, twice.get_json()
    error = twice.get_json()["error"]
    assert error["code"] == "active_booking_exists"
    assert error["details"] == {"reason": "draw_entry", "service_group": "passport", "draw_id": other_draw}
    assert _count(kit, DrawEntry, draw_id=draw_id) == 2


def test_withdraw_before_the_close(release, kit, client):
    draw_id = release.create().get_json()["draw_id"]
    citizen = kit.citizen_id()
    assert release.enter(draw_id, citizen).status_code == 201
    gone = client.delete(f"/api/v1/draws/{draw_id}/entries/me", headers=kit.headers_for(citizen))
    assert gone.status_code == 200 and gone.get_json()["status"] == "withdrawn"
    stranger = client.delete(f"/api/v1/draws/{draw_id}/entries/me", headers=kit.headers_for(kit.citizen_id()))
    assert stranger.status_code == 404


def test_the_draw_allocates_in_hmac_order_and_anyone_can_recompute_it(release, kit, client, make):
    draw_id = release.create().get_json()["draw_id"]
    citizens = kit.citizens(30)
    parts = ["any", "morning", "afternoon"]
    for n, citizen in enumerate(citizens):
        assert release.enter(draw_id, citizen, parts[n % 3]).status_code == 201
    assert client.get(f"/api/v1/draws/{draw_id}/result").status_code == 409

    ran = release.run(draw_id)
    assert ran.status_code == 200, ran.get_json()
    assert ran.get_json()["status"] == "drawn" and len(ran.get_json()["seed"]) == 64

    result = client.get(f"/api/v1/draws/{draw_id}/result")  # public: no sign-in
    assert result.status_code == 200
    body = result.get_json()
    assert len(body["order"]) == 30
    allocations = [(a["entry_token"], a["slot_id"]) for a in body["allocations"]]
    assert sorted(allocations) == sorted(recompute(body))
    assert len(allocations) == 12  # 12 seats, every part of the day asked for by 10 people
    # Each winner holds exactly one booking, held for confirm_hours, in the slot the result names.
    bookings = kit.call(
        lambda: db.session.execute(
            select(Booking.draw_entry_id, Booking.slot_id, Booking.status, Booking.hold_expires_at)
        ).all()
    )
    assert len(bookings) == 12 and {b.status for b in bookings} == {"held"}
    for b in bookings:
        assert 23.9 <= (b.hold_expires_at - clock.now()).total_seconds() / 3600 <= 24
    tokens = dict(kit.call(lambda: db.session.execute(select(DrawEntry.id, DrawEntry.entry_token)).all()))
    assert sorted((tokens[b.draw_entry_id], b.slot_id) for b in bookings) == sorted(allocations)
    assert all(kit.slot_state(s.id) == (2, 2) for s in release.slots)

    winners = {t for t, _ in allocations}
    kinds = kit.call(
        lambda: db.session.execute(select(Notification.kind, func.count()).group_by(Notification.kind)).all()
    )
    assert dict(kinds) == {"draw_won": 12, "draw_waitlisted": 18}
    first = citizens[0]
    mine = client.get("/api/v1/me/draw-entries", headers=kit.headers_for(first)).get_json()[0]
    assert mine["status"] == ("won" if mine["entry_token"] in winners else "waitlisted")
    assert (mine["reference"] is not None) == (mine["status"] == "won")
    actions = kit.call(lambda: db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all())
    assert actions == ["draw.create", "draw.run", "draw.drawn"]

    again = release.run(draw_id)  # idempotent: nothing is drawn twice
    assert again.status_code == 200 and _count(kit, Booking) == 12


def test_a_draw_that_died_half_way_resumes_without_giving_a_seat_twice(release, kit, client, app):
    draw_id = release.create().get_json()["draw_id"]
    for citizen in kit.citizens(20):
        assert release.enter(draw_id, citizen).status_code == 201
    # The scheduler dies after closing, planning and seating the first batch of 5 winners.
    kit.call(draw_run._close_entries, draw_id, actor_id=None, actor_role="system")
    kit.call(draw_run._plan, draw_id)
    original = draw_run.WINNER_BATCH
    draw_run.WINNER_BATCH = 5
    try:
        assert kit.call(draw_run._seat_winners, draw_id) == 5
    finally:
        draw_run.WINNER_BATCH = original
    assert _count(kit, Booking) == 5
    assert kit.call(lambda: db.session.get(Draw, draw_id).status) == "drawing"

    kit.call(draw_run.run_due_draws)  # not due yet (entries_close_at ahead) -> the admin resumes it
    resumed = release.run(draw_id)
    assert resumed.status_code == 200 and resumed.get_json()["status"] == "drawn"
    assert _count(kit, Booking) == 12
    assert kit.call(lambda: db.session.scalar(select(func.count(func.distinct(Booking.draw_entry_id))))) == 12
    assert all(kit.slot_state(s.id) == (2, 2) for s in release.slots)
    body = client.get(f"/api/v1/draws/{draw_id}/result").get_json()
    assert sorted((a["entry_token"], a["slot_id"]) for a in body["allocations"]) == sorted(recompute(body))


def test_the_scheduler_draws_at_the_close(release, kit, client):
    draw_id = release.create().get_json()["draw_id"]
    for citizen in kit.citizens(3):
        release.enter(draw_id, citizen)
    assert kit.call(draw_run.run_due_draws) == 0
    clock.shift(dt.timedelta(hours=3))
    assert kit.call(draw_run.run_due_draws) == 1
    assert kit.call(lambda: db.session.get(Draw, draw_id).status) == "drawn"
    assert _count(kit, Booking) == 3
    assert kit.call(draw_run.run_due_draws) == 0


def test_cancelled_draw_takes_no_entries(release, kit, client):
    draw_id = release.create().get_json()["draw_id"]
    citizen = kit.citizen_id()
    release.enter(draw_id, citizen)
    cancelled = client.post(f"/api/v1/admin/draws/{draw_id}/cancel", json={}, headers=release.admin_headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert release.enter(draw_id, kit.citizen_id()).get_json()["error"]["code"] == "draw_closed"
    assert release.run(draw_id).status_code == 409
    mine = client.get("/api/v1/me/draw-entries", headers=kit.headers_for(citizen)).get_json()
    assert mine[0]["status"] == "cancelled"


@pytest.mark.postgres_only
def test_two_runs_at_once_draw_once(release, kit):
    draw_id = release.create().get_json()["draw_id"]
    for citizen in kit.citizens(40):
        release.enter(draw_id, citizen)

    results = kit.race(lambda _: draw_run.run_draw(draw_id=draw_id).status, range(4), workers=4)

    assert all(r == "drawn" or getattr(r, "code", "") == "draw_in_progress" for r in results), results
    assert _count(kit, Booking) == 12
    assert kit.call(lambda: db.session.scalar(select(func.count(func.distinct(Booking.draw_entry_id))))) == 12


@pytest.mark.postgres_only
def test_a_burst_of_entries_at_the_close_never_lands_after_the_draw(release, kit):
    draw_id = release.create().get_json()["draw_id"]
    citizens = kit.citizens(60)

    def act(arg):
        if arg == "run":
            return draw_run.run_draw(draw_id=draw_id).status
        return draw_entries.enter_draw(account_id=arg, draw_id=draw_id).status

    results = kit.race(act, [*citizens[:30], "run", *citizens[30:]], workers=20)

    assert kit.call(lambda: db.session.get(Draw, draw_id).status) == "drawn"
    assert all(r in ("entered", "drawn") or getattr(r, "code", "") == "draw_closed" for r in results), results
    # Every entry that was accepted took part in the draw (ranked); none is left "entered".
    assert _count(kit, DrawEntry, status="entered") == 0
    assert _count(kit, DrawEntry, rank=None) == 0
    assert _count(kit, IdempotencyKey) == 0


def test_slots_of_an_undrawn_draw_are_not_listed_for_first_come_sale(release, kit, client):
    citizen = kit.citizen_id()
    path = (
        f"/api/v1/centres/{release.offering.centre_id}/slots?service={release.offering.service_code}"
        f"&from={release.days[0]}&to={release.days[1]}"
    )
    assert len(client.get(path, headers=kit.headers_for(citizen)).get_json()) == 6
    draw_id = release.create().get_json()["draw_id"]
    assert client.get(path, headers=kit.headers_for(citizen)).get_json() == []
    client.post(f"/api/v1/admin/draws/{draw_id}/cancel", json={}, headers=release.admin_headers)
    assert len(client.get(path, headers=kit.headers_for(citizen)).get_json()) == 6


def test_first_come_holds_on_draw_days_are_refused_in_draw(release, kit, client):
    citizen = kit.citizen_id()
    inside = release.slots[0]
    outside = kit.call(_make_slot, release.offering.id, _at(_local_day(6), 9), 2, _local_day(6))
    before = client.post("/api/v1/bookings", json={"slot_id": inside.id}, headers=kit.headers_for(citizen))
    assert before.status_code == 201  # no draw yet: first come
    kit.call(lambda: db.session.execute(db.delete(Booking)) and db.session.commit())
    kit.call(lambda: db.session.execute(db.update(Slot).values(booked=0)) and db.session.commit())

    draw_id = release.create().get_json()["draw_id"]
    refused = client.post("/api/v1/bookings", json={"slot_id": inside.id}, headers=kit.headers_for(citizen))
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["error"]["code"] == "in_draw"
    assert refused.get_json()["error"]["details"]["draw_id"] == draw_id
    assert kit.slot_state(inside.id) == (0, 2) and _count(kit, Booking) == 0

    # Other days sell as usual, but not to someone whose entry in the group counts as a booking.
    other = kit.citizen_id()
    assert (
        client.post(
            "/api/v1/bookings", json={"slot_id": outside.id}, headers=kit.headers_for(other)
        ).status_code
        == 201
    )
    assert release.enter(draw_id, citizen).status_code == 201
    entered = client.post("/api/v1/bookings", json={"slot_id": outside.id}, headers=kit.headers_for(citizen))
    assert entered.status_code == 409 and entered.get_json()["error"]["code"] == "active_booking_exists"
    assert entered.get_json()["error"]["details"]["draw_id"] == draw_id


def test_entrants_still_waiting_when_the_days_pass_are_told_they_got_no_place(release, kit, client):
    from booking.waitlist import end_past_waits

    draw_id = release.create().get_json()["draw_id"]
    citizens = kit.citizens(14)  # 12 seats: 2 wait
    for citizen in citizens:
        assert release.enter(draw_id, citizen).status_code == 201
    assert release.run(draw_id).status_code == 200
    assert _count(kit, DrawEntry, status="waitlisted") == 2

    assert kit.call(end_past_waits) == 0  # the draw's days are still ahead: they keep waiting
    clock.shift(dt.timedelta(days=5))
    assert kit.call(end_past_waits) == 2
    assert _count(kit, DrawEntry, status="waitlisted") == 0
    assert _count(kit, DrawEntry, status="lost") == 2
    assert _count(kit, Notification, kind="draw_lost") == 2
    assert kit.call(lambda: db.session.get(Draw, draw_id).waitlist_open) is False
    assert kit.call(end_past_waits) == 0  # once


def _reread_draws_with_a_request_meanwhile():
    """Re-read the running draws (the memo forgotten) while another request asks for them mid-read, as a
    greenlet waiting on the database would: returns both answers and the reads of the draws table."""
    from sqlalchemy import event

    from booking import draws

    reads, meanwhile = [], []

    def during(conn, cursor, statement, *args):
        if re.search(r"\bFROM draws\b", statement):
            reads.append(statement)
            if len(reads) == 1:
                meanwhile.append(draws._active_draws())

    draws.forget_active_draws()
    event.listen(db.engine, "before_cursor_execute", during)
    try:
        answer = draws._active_draws()
    finally:
        event.remove(db.engine, "before_cursor_execute", during)
    return answer, meanwhile, reads


def test_while_one_request_rereads_the_running_draws_the_others_keep_the_last_answer(release, kit):
    """No thundering herd when the 1 s memo runs out: one read, the request meanwhile keeps the last
    answer (a draw's offering stays off sale)."""
    from booking import draws

    release.create()
    known = kit.call(draws._active_draws)
    assert release.offering.id in known[0]
    answer, meanwhile, reads = kit.call(_reread_draws_with_a_request_meanwhile)
    assert len(reads) == 1
    assert meanwhile == [known] and answer == known


def test_before_a_first_answer_every_request_reads_the_draws(release, kit, monkeypatch):
    """A process that never read the draws has no last answer to keep: an empty one would put a draw's
    days on first-come sale, so the request meanwhile reads too, and sees the draw."""
    from booking import draws

    release.create()
    monkeypatch.setitem(draws._active, "loaded", False)
    answer, meanwhile, reads = kit.call(_reread_draws_with_a_request_meanwhile)
    assert len(reads) == 2
    assert release.offering.id in meanwhile[0][0] and release.offering.id in answer[0]


def test_a_first_come_hold_beside_a_running_draw_asks_the_draws_in_the_slots_own_read(
    release, kit, client, app, monkeypatch
):
    """A day outside the draw sells first come, and the hold's draw check (the day, the citizen's entry)
    rides on the read of the slot: no statement of its own."""
    from booking import draws
    from tests.booking.queries import count_queries

    monkeypatch.setitem(app.config, "ACTIVE_DRAWS_SECONDS", 3600)
    release.create()
    kit.call(draws._active_draws)  # the running draws remembered, as between two holds
    outside = kit.call(_make_slot, release.offering.id, _at(_local_day(6), 9), 2, _local_day(6))
    headers = kit.headers_for(kit.citizen_id())
    with count_queries(app) as statements:
        held = client.post("/api/v1/bookings", json={"slot_id": outside.id}, headers=headers)
    assert held.status_code == 201, held.get_json()
    about_draws = [s for s in statements if re.search(r"\bdraw(s|_entries)\b", s)]
    assert len(about_draws) == 1
    assert re.search(r"\bFROM slots\b", about_draws[0])
    # Not even a read of which offering and group the slot is in: the hold's statements are as without a
    # draw (PostgreSQL: the slot's read, the standing, the seat with the booking; SQLite writes in four).
    from tests.conftest import IS_POSTGRES

    assert len(statements) == (3 if IS_POSTGRES else 6), statements
