"""The centre floor: tickets only while open, counters held by one clerk (takeover, one per clerk), pause,
call-next refused while serving, a ticket's public page data, the floor view and the day by hour."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from tests.authz import assert_forbidden
from tests.factories import WEEKDAYS_OPEN
from ticketing import counters, services, tasks
from ticketing.models import CounterSession, Ticket

API = "/api/v1"
DAY = dt.date(2030, 5, 1)  # a Wednesday


def at(hhmm: str, day: dt.date = DAY) -> None:
    """Move the clock to HH:MM in Amman (UTC+3)."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    clock.travel_to(midnight + dt.timedelta(hours=hour - 3, minutes=minute))


def h(make, account, language="en"):
    """Headers with a token issued at the (moved) clock's time."""
    return make.headers(account, language)


def take(client, site, service=None, headers=None, vulnerable=False):
    return client.post(
        f"{API}/centres/{site.centre.id}/tickets",
        json={"service": (service or site.other).code, "vulnerable": vulnerable},
        headers=headers or site.kiosk,
    )


def open_counter(client, headers, counter_id, services, **body):
    return client.post(
        f"{API}/staff/counters/{counter_id}/open",
        json={"services": [s.code for s in services], **body},
        headers=headers,
    )


def post(client, path, headers, **body):
    return client.post(f"{API}{path}", json=body or None, headers=headers)


def error(response):
    return response.json["error"]


# ------------------------------------------------------------------------------------ centre_closed


def test_no_ticket_is_issued_while_the_centre_is_closed_whatever_the_source(kit, make, client):
    site = kit.site(remote=True, weekly_hours=WEEKDAYS_OPEN)  # 08:00-15:00 every day
    citizen = make.citizen()
    at("23:37")
    booking = kit.booking(site, citizen, starts_in=dt.timedelta(minutes=5))
    supervisor, clerk = h(make, site.supervisor), h(make, site.clerk)
    attempts = {
        "kiosk": take(client, site),
        "staff walk-in": take(client, site, headers=clerk),
        "app remote ticket": take(client, site, headers=h(make, citizen)),
        "kiosk check-in": post(
            client, f"/centres/{site.centre.id}/check-in", site.kiosk, reference=booking.reference
        ),
        "app check-in": post(client, f"/bookings/{booking.reference}/check-in", h(make, citizen)),
        "urgent ticket": post(
            client,
            f"/staff/centres/{site.centre.id}/urgent-tickets",
            supervisor,
            service=site.passport.code,
            reason="Flight tonight",
        ),
    }
    for source, r in attempts.items():
        assert r.status_code == 409, (source, r.json)
        assert error(r)["code"] == "centre_closed", source
        assert error(r)["details"]["opens_at"] == "2030-05-02T08:00:00+03:00", source
    assert kit.call(lambda: db.session.scalar(select(Ticket.id))) is None
    from booking.models import Booking

    assert kit.make.fresh(Booking, booking.id).status == "confirmed"  # not checked in either
    arabic = take(client, site, headers={**site.kiosk, "Accept-Language": "ar"})
    assert "المركز مغلق الآن" in error(arabic)["message"]
    assert (
        "Tickets are issued from"
        in error(take(client, site, headers={**site.kiosk, "Accept-Language": "en"}))["message"]
    )
    # A centre with no opening ahead says so.
    kit.call(
        lambda: (
            setattr(db.session.get(type(site.centre), site.centre.id), "weekly_hours", {}),
            db.session.commit(),
        )
    )
    assert error(take(client, site))["details"]["opens_at"] is None
    at("08:00", DAY + dt.timedelta(days=1))
    kit.call(
        lambda: (
            setattr(db.session.get(type(site.centre), site.centre.id), "weekly_hours", WEEKDAYS_OPEN),
            db.session.commit(),
        )
    )
    assert take(client, site).status_code == 201


def test_a_closure_day_refuses_kiosk_tickets_in_the_centres_own_date(kit, make, client):
    """A centre open around the clock closed for a day refuses tickets on that local day only, also when
    the UTC date is still the day before; an unknown centre is 404, a service it does not offer 409."""
    from app.catalogue.models import Closure

    always = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    site = kit.site(weekly_hours=always)
    kit.call(lambda: (db.session.add(Closure(centre_id=site.centre.id, date=DAY)), db.session.commit()))
    at("23:59", DAY - dt.timedelta(days=1))
    assert take(client, site).status_code == 201
    at("01:30")  # 22:30 UTC the day before
    r = take(client, site)
    assert r.status_code == 409 and error(r)["code"] == "centre_closed"
    assert error(r)["details"]["opens_at"] == "2030-05-02T00:00:00+03:00"
    at("00:00", DAY + dt.timedelta(days=1))
    assert take(client, site).status_code == 201
    unknown = client.post(
        f"{API}/centres/nowhere/tickets", json={"service": site.other.code}, headers=site.kiosk
    )
    assert unknown.status_code in (403, 404)
    r = client.post(
        f"{API}/centres/{site.centre.id}/tickets", json={"service": "no-such-service"}, headers=site.kiosk
    )
    assert r.status_code == 409 and error(r)["code"] == "service_not_offered"


def test_close_of_day_expires_every_open_ticket_of_the_day(kit, make, client):
    site = kit.site(weekly_hours=WEEKDAYS_OPEN)
    at("14:40")
    one, two = site.counters
    assert open_counter(client, h(make, site.clerk), one, [site.other]).status_code == 200
    assert open_counter(client, h(make, site.clerk2), two, [site.other]).status_code == 200
    ids = [take(client, site).json["ticket_id"] for _ in range(4)]
    called = post(client, f"/staff/counters/{one}/call-next", h(make, site.clerk)).json["ticket_id"]
    serving = post(client, f"/staff/counters/{two}/call-next", h(make, site.clerk2)).json["ticket_id"]
    post(client, f"/staff/tickets/{serving}/start", h(make, site.clerk2))
    at("14:59")
    assert kit.call(tasks.close_day) == 0
    at("15:00")  # closing time
    assert kit.call(tasks.close_day) == 3  # two waiting, one called
    statuses = kit.call(lambda: dict(db.session.execute(select(Ticket.id, Ticket.status)).all()))
    assert statuses[called] == "expired" and statuses[serving] == "serving"
    assert [statuses[i] for i in ids if i not in (called, serving)] == ["expired", "expired"]
    assert client.get(f"{API}/centres/{site.centre.id}/queue").json["waiting"] == {}
    assert kit.call(tasks.close_day) == 0


# ------------------------------------------------------------------------------------ counters


def test_a_held_counter_is_refused_then_taken_over_by_a_supervisor_with_an_audit_entry(kit, make, client):
    site = kit.site()
    counter = site.counters[0]
    assert open_counter(client, site.headers["clerk"], counter, [site.other]).status_code == 200
    take(client, site)
    take(client, site)
    first = post(client, f"/staff/counters/{counter}/call-next", site.headers["clerk"]).json

    refused = open_counter(client, site.headers["clerk2"], counter, [site.other])
    assert refused.status_code == 409 and error(refused)["code"] == "counter_taken"
    details = error(refused)["details"]
    assert details["held_by"] == site.clerk.full_name and details["held_by_account_id"] == site.clerk.id
    assert details["since"].endswith("+03:00") and details["counter_id"] == counter
    assert site.clerk.full_name in error(refused)["message"]
    arabic = open_counter(client, {**site.headers["clerk2"], "Accept-Language": "ar"}, counter, [site.other])
    assert "يعمل" in error(arabic)["message"]
    # A clerk cannot force it; nor work a counter someone else holds.
    forced = open_counter(client, site.headers["clerk2"], counter, [site.other], force=True)
    assert forced.status_code == 403 and error(forced)["code"] == "takeover_not_allowed"
    for action in ("call-next", "pause", "close"):
        body = {"reason": "break"} if action == "pause" else {}
        r = post(client, f"/staff/counters/{counter}/{action}", site.headers["clerk2"], **body)
        assert r.status_code == 409 and error(r)["code"] == "counter_taken", action
    assert kit.call(lambda: db.session.scalar(select(AuditEntry.id))) is None

    taken = open_counter(client, site.headers["supervisor"], counter, [site.other, site.passport], force=True)
    assert taken.status_code == 200, taken.json
    assert taken.json["account_id"] == site.supervisor.id
    entries = kit.call(lambda: db.session.scalars(select(AuditEntry)).all())
    assert [(e.action, e.actor_id, e.subject_id, e.centre_id) for e in entries] == [
        ("counter.taken_over", site.supervisor.id, str(counter), site.centre.id)
    ]
    assert entries[0].details["from_account_id"] == site.clerk.id
    sessions = kit.call(lambda: db.session.scalars(select(CounterSession).order_by(CounterSession.id)).all())
    assert sessions[0].closed_at is not None and sessions[1].closed_at is None
    # The former holder no longer works it; the supervisor does, with the called ticket still there.
    r = post(client, f"/staff/counters/{counter}/call-next", site.headers["clerk"])
    assert r.status_code == 409 and error(r)["code"] == "counter_taken"
    again = post(client, f"/staff/counters/{counter}/call-next", site.headers["supervisor"])
    assert again.status_code == 200 and again.json["ticket_id"] == first["ticket_id"]


def test_a_clerk_holds_one_counter(kit, make, client):
    site = kit.site(counters=3)
    one, two, _ = site.counters
    assert open_counter(client, site.headers["clerk"], one, [site.other]).status_code == 200
    r = open_counter(client, site.headers["clerk"], two, [site.other])
    assert r.status_code == 409 and error(r)["code"] == "already_at_counter"
    assert error(r)["details"]["counter_id"] == one and error(r)["details"]["number"] == 1
    # Not even a supervisor's force: close the other counter first.
    assert open_counter(client, site.headers["supervisor"], two, [site.other]).status_code == 200
    r = open_counter(client, site.headers["supervisor"], one, [site.other], force=True)
    assert r.status_code == 409 and error(r)["code"] == "already_at_counter"
    assert post(client, f"/staff/counters/{one}/close", site.headers["clerk"]).status_code == 200
    assert open_counter(client, site.headers["clerk"], one, [site.other]).status_code == 200
    # A supervisor closes the counter a clerk left open (audited).
    closed = post(client, f"/staff/counters/{one}/close", site.headers["supervisor"])
    assert closed.status_code == 200 and closed.json["open"] is False
    actions = kit.call(lambda: db.session.scalars(select(AuditEntry.action)).all())
    assert actions == ["counter.closed_for_clerk"]

    # The database holds the rule whatever the code does.
    def second_open_session():
        db.session.add(
            CounterSession(counter_id=two, account_id=site.supervisor.id, services=[], opened_at=clock.now())
        )
        db.session.add(
            CounterSession(counter_id=one, account_id=site.supervisor.id, services=[], opened_at=clock.now())
        )
        db.session.commit()

    with pytest.raises(IntegrityError):
        kit.call(second_open_session)


def test_a_paused_counter_calls_nobody_and_shortens_no_wait(kit, make, client):
    site = kit.site()
    one, two = site.counters
    for who, counter in (("clerk", one), ("clerk2", two)):
        assert open_counter(client, site.headers[who], counter, [site.other]).status_code == 200
    tickets = [take(client, site).json for _ in range(3)]
    # Two ahead, 6 minutes each (the service's figure), two counters: 6 minutes.
    assert tickets[2]["position"] == 3 and tickets[2]["estimated_wait_minutes"] == 6

    for reason in ("", "x" * 201):
        r = post(client, f"/staff/counters/{two}/pause", site.headers["clerk2"], reason=reason)
        assert r.status_code == 422, reason
    assert post(client, f"/staff/counters/{two}/pause", site.headers["clerk2"]).status_code == 422
    paused = post(client, f"/staff/counters/{two}/pause", site.headers["clerk2"], reason="break")
    assert (
        paused.status_code == 200 and paused.json["paused"] is True and paused.json["pause_reason"] == "break"
    )
    ticket = client.get(f"{API}/tickets/{tickets[2]['ticket_id']}", headers=site.headers["clerk"]).json
    assert ticket["estimated_wait_minutes"] == 12  # one counter works
    public = client.get(f"{API}/public-tickets/{tickets[2]['public_id']}").json
    assert public["estimated_wait_minutes"] == 12
    refused = post(client, f"/staff/counters/{two}/call-next", site.headers["clerk2"])
    assert refused.status_code == 409 and error(refused)["code"] == "counter_paused"
    state = client.get(f"{API}/staff/counters/{two}", headers=site.headers["clerk2"]).json
    assert state["state"] == "paused" and state["paused"] is True and state["pause_reason"] == "break"
    assert post(client, f"/staff/counters/{one}/call-next", site.headers["clerk"]).status_code == 200

    resumed = post(client, f"/staff/counters/{two}/resume", site.headers["clerk2"])
    assert (
        resumed.status_code == 200
        and resumed.json["paused"] is False
        and resumed.json["pause_reason"] is None
    )
    assert post(client, f"/staff/counters/{two}/call-next", site.headers["clerk2"]).status_code == 200
    closed = post(client, f"/staff/counters/{two}/pause", site.headers["clerk"], reason="break")
    assert error(closed)["code"] == "counter_taken"


def test_call_next_is_refused_while_the_counters_ticket_is_served(kit, client):
    site = kit.site()
    counter = site.counters[0]
    open_counter(client, site.headers["clerk"], counter, [site.other])
    first, second = take(client, site).json, take(client, site).json
    called = post(client, f"/staff/counters/{counter}/call-next", site.headers["clerk"]).json
    post(client, f"/staff/tickets/{called['ticket_id']}/start", site.headers["clerk"])
    refused = post(client, f"/staff/counters/{counter}/call-next", site.headers["clerk"])
    assert refused.status_code == 409 and error(refused)["code"] == "ticket_in_service"
    assert "Complete the visit first" in error(refused)["message"]
    assert kit.make.fresh(Ticket, first["ticket_id"]).status == "serving"
    assert kit.make.fresh(Ticket, second["ticket_id"]).status == "waiting"
    post(client, f"/staff/tickets/{called['ticket_id']}/complete", site.headers["clerk"])
    assert (
        post(client, f"/staff/counters/{counter}/call-next", site.headers["clerk"]).json["ticket_id"]
        == second["ticket_id"]
    )


# ------------------------------------------------------------------------------------ public page


def test_a_tickets_public_page_data_names_nobody(kit, make, client):
    site = kit.site(remote=True)
    citizen = make.citizen()
    mine = take(client, site, headers=make.headers(citizen)).json
    assert mine["public_id"] and mine["public_id"] != str(mine["ticket_id"]) and len(mine["public_id"]) >= 16
    walk_in = take(client, site).json
    assert walk_in["public_id"] != mine["public_id"]
    r = client.get(f"{API}/public-tickets/{mine['public_id']}")  # no sign-in
    assert r.status_code == 200, r.json
    assert set(r.json) == {
        "public_id",
        "number",
        "service",
        "services",
        "status",
        "position",
        "estimated_wait_minutes",
        "counter",
        "centre_id",
        "centre_name_ar",
        "centre_name_en",
        "timezone",
        "issued_at",
        "called_at",
    }
    assert r.json["number"] == mine["number"] and r.json["status"] == "waiting" and r.json["position"] == 1
    assert r.json["services"] == [
        {"code": site.other.code, "name_ar": site.other.name_ar, "name_en": site.other.name_en}
    ]
    assert r.json["centre_id"] == site.centre.id and r.json["centre_name_en"] == site.centre.name_en
    assert r.json["counter"] is None and r.json["issued_at"].endswith("+03:00")
    for personal in (citizen.national_id, citizen.full_name, citizen.phone):
        assert personal not in r.get_data(as_text=True)
    assert client.get(f"{API}/public-tickets/not-a-ticket-id").status_code == 404
    assert client.get(f"{API}/public-tickets/{mine['ticket_id']}").status_code == 404

    open_counter(client, site.headers["clerk"], site.counters[1], [site.other])
    post(client, f"/staff/counters/{site.counters[1]}/call-next", site.headers["clerk"])
    called = client.get(f"{API}/public-tickets/{mine['public_id']}").json
    assert called["status"] == "called" and called["position"] == 0
    assert called["counter"] == {
        "id": site.counters[1],
        "number": 2,
        "name_ar": "شباك 2",
        "name_en": "Counter 2",
    }
    # After a transfer the printed QR follows the visitor to the new queue.
    moved = post(
        client,
        f"/staff/tickets/{mine['ticket_id']}/transfer",
        site.headers["clerk"],
        service=site.passport.code,
    )
    assert moved.status_code == 200 and moved.json["public_id"] == mine["public_id"]
    followed = client.get(f"{API}/public-tickets/{mine['public_id']}").json
    assert followed["service"] == site.passport.code and followed["status"] == "waiting"


def test_public_ticket_reads_are_limited_per_address(make_app):
    app = make_app(RATELIMIT_PUBLIC_READS_PER_ADDRESS="2 per minute")
    client = app.test_client()
    answers = [client.get(f"{API}/public-tickets/unknown-id").status_code for _ in range(3)]
    assert answers == [404, 404, 429]


# ------------------------------------------------------------------------------------ floor and figures


def test_the_floor_view_shows_every_counter(kit, make, client):
    site = kit.site(counters=4)
    one, two, three, _ = site.counters
    open_counter(client, site.headers["clerk"], one, [site.other])
    open_counter(client, site.headers["clerk2"], two, [site.other])
    open_counter(client, site.headers["supervisor"], three, [site.passport])
    post(client, f"/staff/counters/{two}/pause", site.headers["clerk2"], reason="prayer")
    ticket = take(client, site).json
    post(client, f"/staff/counters/{one}/call-next", site.headers["clerk"])
    post(client, f"/staff/tickets/{ticket['ticket_id']}/start", site.headers["clerk"])
    r = client.get(f"{API}/staff/centres/{site.centre.id}/counters", headers=site.headers["clerk"])
    assert r.status_code == 200, r.json
    floor = {entry["number"]: entry for entry in r.json["counters"]}
    assert [floor[n]["state"] for n in (1, 2, 3, 4)] == ["serving", "paused", "open", "closed"]
    assert floor[1]["clerk_name"] == site.clerk.full_name and floor[1]["since"].endswith("+03:00")
    assert (
        floor[1]["current"]["number"] == ticket["number"]
        and floor[1]["current"]["service"] == site.other.code
    )
    assert floor[1]["current"]["status"] == "serving"
    assert floor[2]["pause_reason"] == "prayer" and floor[2]["paused_at"] and floor[2]["current"] is None
    assert floor[4]["clerk_name"] is None and floor[4]["since"] is None and floor[4]["open"] is False
    assert r.json["summary"] == {"closed": 1, "open": 1, "paused": 1, "serving": 1}
    stats = client.get(f"{API}/staff/centres/{site.centre.id}/stats", headers=site.headers["supervisor"]).json
    assert stats["counters"] == {"open": 3, "paused": 1, "serving": 1}
    admin = make.account("admin")
    assert (
        client.get(f"{API}/staff/centres/{site.centre.id}/counters", headers=make.headers(admin)).status_code
        == 200
    )
    elsewhere = kit.site()
    routes = [("GET", f"{API}/staff/centres/{site.centre.id}/counters")]
    assert_forbidden(client, routes, elsewhere.headers["clerk"])
    assert_forbidden(client, routes, make.headers(make.citizen()))


def test_the_days_figures_by_hour_and_service_equal_a_hand_count(kit, make, client):
    site = kit.site(weekly_hours=WEEKDAYS_OPEN, urgent_reserve=3)
    C, P = site.other, site.passport
    one, two = site.counters
    citizen = make.citizen()

    def do(path, who, **body):
        r = post(client, path, h(make, getattr(site, who)), **body)
        assert r.status_code in (200, 201), r.json
        return r.json

    at("08:05")
    t1 = take(client, site, C).json["ticket_id"]
    t2 = take(client, site, C).json["ticket_id"]
    at("08:40")
    t3 = take(client, site, P).json["ticket_id"]
    do(f"/staff/counters/{one}/open", "clerk", services=[C.code, P.code])
    do(f"/staff/counters/{two}/open", "clerk2", services=[P.code])
    at("08:45")
    assert do(f"/staff/counters/{one}/call-next", "clerk")["ticket_id"] == t1  # waited 40
    assert do(f"/staff/counters/{two}/call-next", "clerk2")["ticket_id"] == t3  # waited 5
    do(f"/staff/tickets/{t1}/start", "clerk")
    at("09:10")
    do(f"/staff/tickets/{t1}/complete", "clerk")  # served in hour 9
    do(f"/staff/tickets/{t3}/no-show", "clerk2")
    at("09:20")
    assert take(client, site, P).status_code == 201  # still waiting at the end
    assert do(f"/staff/counters/{one}/call-next", "clerk")["ticket_id"] == t2  # waited 75
    at("10:02")
    do(f"/staff/tickets/{t2}/complete", "clerk")  # served in hour 10
    at("10:30")
    take(client, site, C)  # still waiting at the end
    # An urgent pass for the day, from the passport reserve of 3.
    request = post(
        client,
        "/urgent-requests",
        h(make, citizen),
        service=P.code,
        centre_id=site.centre.id,
        reason_code="medical",
        travel_date=(DAY + dt.timedelta(days=3)).isoformat(),
        details="Surgery",
    ).json
    do(
        f"/staff/urgent-requests/{request['id']}/approve",
        "supervisor",
        date=DAY.isoformat(),
        note="Letter seen",
    )
    do(f"/staff/counters/{two}/pause", "clerk2", reason="break")

    stats = client.get(
        f"{API}/staff/centres/{site.centre.id}/stats",
        query_string={"date": DAY.isoformat()},
        headers=h(make, site.supervisor),
    ).json
    hours = {row["hour"]: (row["issued"], row["served"]) for row in stats["by_hour"]}
    assert hours == {8: (3, 0), 9: (1, 1), 10: (1, 1), 11: (0, 0), 12: (0, 0), 13: (0, 0), 14: (0, 0)}
    assert sum(i for i, _ in hours.values()) == stats["tickets"] == 5
    assert stats["served"] == 2
    by_service = {row["service_code"]: row for row in stats["by_service"]}
    assert {code: (r["issued"], r["served"], r["waiting"]) for code, r in by_service.items()} == {
        C.code: (3, 2, 1),
        P.code: (2, 0, 1),
    }
    # C waited 40 and 75 (mean 57.5, p90 75); P: t3 waited 5.
    assert (by_service[C.code]["mean_wait_minutes"], by_service[C.code]["p90_wait_minutes"]) == (57.5, 75.0)
    assert (by_service[P.code]["mean_wait_minutes"], by_service[P.code]["p90_wait_minutes"]) == (5.0, 5.0)
    assert by_service[C.code]["name_en"] == C.name_en
    assert stats["no_show_rate"] == round(1 / 3, 3)
    assert stats["satisfaction"] == {"mean": None, "count": 0}
    assert stats["counters"] == {"open": 2, "paused": 1, "serving": 0}
    assert stats["urgent_reserve"] == {"used": 1, "total": 3}
    assert stats["wait_minutes"] == {"mean": 40.0, "p90": 75.0, "count": 3}


# ------------------------------------------------------------------------------------ races


def _clerks(kit, site, n):
    from tests.ticketing.conftest import principal_of

    return [principal_of(kit.make.staff(site.centre)) for _ in range(n)]


@pytest.mark.postgres_only
def test_clerks_opening_one_counter_at_the_same_instant_leave_one_holding_it(kit):
    site = kit.site(counters=2)
    clerks = _clerks(kit, site, 12)
    for round_ in range(5):
        counter = site.counters[round_ % 2]
        barrier = threading.Barrier(len(clerks))

        def open_it(clerk, counter=counter, barrier=barrier):
            barrier.wait()
            return counters.open_counter(counter_id=counter, services=[site.other.code], principal=clerk)

        results = kit.race(open_it, clerks, workers=len(clerks))
        held = [r for r in results if isinstance(r, CounterSession)]
        refused = [r.code for r in results if not isinstance(r, CounterSession)]
        assert len(held) == 1, results
        assert set(refused) == {"counter_taken"}
        open_rows = kit.call(
            lambda counter=counter: db.session.scalars(
                select(CounterSession).where(
                    CounterSession.counter_id == counter, CounterSession.closed_at.is_(None)
                )
            ).all()
        )
        assert [s.account_id for s in open_rows] == [held[0].account_id]
        holder = next(c for c in clerks if c.id == held[0].account_id)
        kit.call(counters.close_counter, counter_id=counter, principal=holder)


@pytest.mark.postgres_only
def test_one_clerk_opening_two_counters_at_the_same_instant_holds_one(kit):
    site = kit.site(counters=2)
    clerk = _clerks(kit, site, 1)[0]
    for _ in range(5):
        barrier = threading.Barrier(2)

        def open_it(counter):
            barrier.wait()
            return counters.open_counter(counter_id=counter, services=[site.other.code], principal=clerk)

        results = kit.race(open_it, site.counters, workers=2)
        held = [r for r in results if isinstance(r, CounterSession)]
        assert len(held) == 1, results
        assert [r.code for r in results if not isinstance(r, CounterSession)] == ["already_at_counter"]
        kit.call(counters.close_counter, counter_id=held[0].counter_id, principal=clerk)


@pytest.mark.postgres_only
def test_two_counters_calling_while_one_is_serving(kit):
    """Counter A serves a visitor while A and B call at the same instant, many times: A is always refused
    and its visitor stays served; B gets the next ticket every time; nobody is called twice."""
    site = kit.site(counters=2)
    a, b = _clerks(kit, site, 2)
    one, two = site.counters

    def seed():
        counters.open_counter(counter_id=one, services=[site.other.code], principal=a)
        counters.open_counter(counter_id=two, services=[site.other.code], principal=b)
        for _ in range(12):
            services.issue_walk_in_ticket(centre_id=site.centre.id, service_code=site.other.code)
        served = services.call_next_ticket(counter_id=one, principal=a)
        services.start_ticket(ticket_id=served.id, principal=a)
        return served.id

    serving = kit.call(seed)
    called = []
    for _ in range(10):
        barrier = threading.Barrier(2)

        def call(pair):
            counter, clerk = pair
            barrier.wait()
            ticket = services.call_next_ticket(counter_id=counter, principal=clerk)
            if ticket is not None and counter == two:
                services.complete_ticket(ticket_id=ticket.id, principal=clerk)
            return ticket

        at_a, at_b = kit.race(call, [(one, a), (two, b)], workers=2)
        assert getattr(at_a, "code", None) == "ticket_in_service", at_a
        assert at_b is not None and not isinstance(at_b, Exception), at_b
        called.append(at_b.id)
    assert len(set(called)) == 10 and serving not in called
    assert kit.make.fresh(Ticket, serving).status == "serving"


@pytest.mark.postgres_only
def test_start_and_call_next_clicked_together_leave_one_ticket_at_the_counter(kit):
    """A start and a call-next at the same counter at the same instant: either the visit starts and the call
    is refused, or the call puts the visitor back first (and the start then finds it called again, or not
    called at all): never two tickets at one counter."""
    site = kit.site(counters=1)
    clerk = _clerks(kit, site, 1)[0]
    counter = site.counters[0]

    def seed():
        counters.open_counter(counter_id=counter, services=[site.other.code], principal=clerk)
        for _ in range(30):
            services.issue_walk_in_ticket(centre_id=site.centre.id, service_code=site.other.code)

    kit.call(seed)
    active = (Ticket.counter_id == counter) & Ticket.status.in_(("called", "serving"))

    def prepare() -> int:
        """A ticket called at the counter (the one served before is completed)."""
        ticket = db.session.scalar(select(Ticket).where(active))
        if ticket is not None and ticket.status == "serving":
            services.complete_ticket(ticket_id=ticket.id, principal=clerk)
            ticket = None
        return (
            ticket.id
            if ticket is not None
            else services.call_next_ticket(counter_id=counter, principal=clerk).id
        )

    for _ in range(10):
        ticket_id = kit.call(prepare)
        barrier = threading.Barrier(2)

        def click(action, ticket_id=ticket_id, barrier=barrier):
            barrier.wait()
            if action == "start":
                return services.start_ticket(ticket_id=ticket_id, principal=clerk)
            return services.call_next_ticket(counter_id=counter, principal=clerk)

        kit.race(click, ["start", "call"], workers=2)
        at_counter = kit.call(lambda: db.session.scalars(select(Ticket.status).where(active)).all())
        assert len(at_counter) <= 1, at_counter
