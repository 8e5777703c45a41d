"""Counters: opening for services, calling by the policy, recall, start, complete, no-show, transfer."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import event

from app import clock
from app.extensions import db
from app.redis_client import get_redis
from tests.authz import assert_forbidden, assert_needs_auth
from tests.conftest import IS_POSTGRES
from ticketing import live
from ticketing.models import CounterSession, Ticket

API = "/api/v1"


def take(client, site, service=None, vulnerable=False, headers=None):
    r = client.post(
        f"{API}/centres/{site.centre.id}/tickets",
        json={"service": (service or site.other).code, "vulnerable": vulnerable},
        headers=headers or site.kiosk,
    )
    assert r.status_code == 201, r.json
    return r.json


def open_counter(client, site, counter=None, services=None, who="clerk"):
    r = client.post(
        f"{API}/staff/counters/{counter or site.counters[0]}/open",
        json={"services": [s.code for s in (services or [site.other, site.passport])]},
        headers=site.headers[who],
    )
    assert r.status_code == 200, r.json
    return r.json


def call(client, site, counter=None, who="clerk"):
    return client.post(
        f"{API}/staff/counters/{counter or site.counters[0]}/call-next", headers=site.headers[who]
    )


def act(client, site, ticket_id, action, who="clerk", **body):
    return client.post(
        f"{API}/staff/tickets/{ticket_id}/{action}", json=body or None, headers=site.headers[who]
    )


def test_open_call_start_complete(kit, client):
    site = kit.site()
    opened = open_counter(client, site)
    assert opened["open"] is True and opened["counter_id"] == site.counters[0]
    ticket = take(client, site)
    r = call(client, site)
    assert r.status_code == 200, r.json
    called = r.json
    assert called["ticket_id"] == ticket["ticket_id"] and called["status"] == "called"
    assert called["counter"]["id"] == site.counters[0] and called["counter"]["number"] == 1
    assert called["position"] == 0
    # Nobody else waits: 204.
    assert act(client, site, called["ticket_id"], "start").json["status"] == "serving"
    done = act(client, site, called["ticket_id"], "complete").json
    assert done["status"] == "done" and done["ended_at"]
    assert call(client, site).status_code == 204


def test_call_next_needs_an_open_counter_and_never_skips_anyone(kit, client):
    site = kit.site()
    a = take(client, site)
    b = take(client, site)
    r = call(client, site)
    assert r.status_code == 409 and r.json["error"]["code"] == "counter_not_open"
    open_counter(client, site)
    assert call(client, site).json["ticket_id"] == a["ticket_id"]
    # Calling again before A came forward (a double click) puts A back in its place: A is called again.
    again = call(client, site).json
    assert again["ticket_id"] == a["ticket_id"] and again["status"] == "called"
    assert kit.make.fresh(Ticket, b["ticket_id"]).status == "waiting"
    # Once A is being served, calling is refused until A's visit is completed; then B is called.
    act(client, site, a["ticket_id"], "start")
    refused = call(client, site)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "ticket_in_service"
    assert kit.make.fresh(Ticket, a["ticket_id"]).status == "serving"
    act(client, site, a["ticket_id"], "complete")
    assert call(client, site).json["ticket_id"] == b["ticket_id"]
    assert kit.make.fresh(Ticket, a["ticket_id"]).status == "done"
    act(client, site, b["ticket_id"], "start")
    act(client, site, b["ticket_id"], "complete")
    assert call(client, site).status_code == 204


def test_a_counter_calls_only_its_services(kit, client):
    site = kit.site()
    take(client, site, site.passport)
    open_counter(client, site, services=[site.other])
    assert call(client, site).status_code == 204
    r = client.post(
        f"{API}/staff/counters/{site.counters[0]}/open",
        json={"services": ["nowhere.service"]},
        headers=site.headers["clerk"],
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "service_not_served"


def test_urgent_first_then_due_appointments_then_issue_order_with_vulnerable_bonus(kit, make, client):
    site = kit.site()
    open_counter(client, site)
    citizen = make.citizen()
    early = take(client, site)
    clock.shift(dt.timedelta(minutes=1))
    later_vulnerable = take(client, site, vulnerable=True)  # 15-minute bonus puts it ahead of `early`
    booking = kit.booking(site, citizen, starts_in=dt.timedelta(minutes=5))  # due (10 minutes early window)
    appointment = client.post(
        f"{API}/centres/{site.centre.id}/check-in", json={"reference": booking.reference}, headers=site.kiosk
    ).json
    assert appointment["source"] == "appointment"
    urgent = client.post(
        f"{API}/staff/centres/{site.centre.id}/urgent-tickets",
        json={"service": site.passport.code, "reason": "Travelling for surgery tonight"},
        headers=site.headers["supervisor"],
    ).json
    order = []
    for _ in range(4):
        r = call(client, site)
        order.append(r.json["ticket_id"])
        act(client, site, r.json["ticket_id"], "complete")
    assert order == [
        urgent["ticket_id"],
        appointment["ticket_id"],
        later_vulnerable["ticket_id"],
        early["ticket_id"],
    ]


def test_recall_then_no_show_after_the_configured_calls(kit, client):
    site = kit.site()
    open_counter(client, site)
    take(client, site)
    ticket = call(client, site).json
    first = act(client, site, ticket["ticket_id"], "recall").json
    assert first["status"] == "called" and first["recall_count"] == 1
    second = act(client, site, ticket["ticket_id"], "recall").json
    assert second["status"] == "called" and second["recall_count"] == 2
    # QUEUE_MAX_CALLS = 3: the third recall finds nobody and gives up.
    third = act(client, site, ticket["ticket_id"], "recall").json
    assert third["status"] == "no_show"
    r = act(client, site, ticket["ticket_id"], "recall")
    assert r.status_code == 409 and r.json["error"]["code"] == "ticket_state"


def test_no_show_frees_the_counter(kit, client):
    site = kit.site()
    open_counter(client, site)
    take(client, site)
    nxt = take(client, site)
    ticket = call(client, site).json
    assert act(client, site, ticket["ticket_id"], "no-show").json["status"] == "no_show"
    assert call(client, site).json["ticket_id"] == nxt["ticket_id"]


def test_transfer_keeps_the_number_and_the_original_issue_time(kit, client):
    site = kit.site()
    open_counter(client, site, services=[site.other])
    open_counter(client, site, counter=site.counters[1], services=[site.passport], who="clerk2")
    older = take(client, site)
    clock.shift(dt.timedelta(minutes=5))
    waiting_passport = take(client, site, site.passport)
    called = call(client, site).json
    assert called["ticket_id"] == older["ticket_id"]
    moved = act(client, site, called["ticket_id"], "transfer", service=site.passport.code)
    assert moved.status_code == 200, moved.json
    copy = moved.json
    assert copy["number"] == older["number"] and copy["service"] == site.passport.code
    assert copy["status"] == "waiting" and copy["transferred_from_id"] == older["ticket_id"]
    assert copy["issued_at"] == older["issued_at"]
    # Issued earlier than the passport ticket, so it is called first there.
    assert copy["position"] == 1
    assert call(client, site, site.counters[1], who="clerk2").json["ticket_id"] == copy["ticket_id"]
    original = kit.make.fresh(Ticket, older["ticket_id"])
    assert original.status == "transferred"
    assert kit.make.fresh(Ticket, waiting_passport["ticket_id"]).status == "waiting"
    same = act(client, site, copy["ticket_id"], "transfer", who="clerk2", service=site.passport.code)
    assert same.status_code == 409


def test_a_counter_left_open_is_closed_by_its_clerk_and_reopened(kit, client):
    site = kit.site()
    first = open_counter(client, site)
    # The same clerk re-opening just changes the services.
    again = open_counter(client, site, services=[site.passport])
    assert again["id"] == first["id"] and again["services"] == [site.passport.code]
    closed = client.post(f"{API}/staff/counters/{site.counters[0]}/close", headers=site.headers["clerk"])
    assert closed.status_code == 200 and closed.json["open"] is False
    second = open_counter(client, site, who="clerk2")
    assert first["id"] != second["id"]
    assert kit.make.fresh(CounterSession, first["id"]).closed_at is not None
    closed = client.post(f"{API}/staff/counters/{site.counters[0]}/close", headers=site.headers["clerk2"])
    assert closed.status_code == 200 and closed.json["open"] is False
    assert (
        client.post(
            f"{API}/staff/counters/{site.counters[0]}/close", headers=site.headers["clerk2"]
        ).status_code
        == 409
    )


def test_counter_state_lists_the_waiting_in_call_order(kit, client):
    site = kit.site()
    open_counter(client, site)
    a = take(client, site)
    clock.shift(dt.timedelta(minutes=1))
    b = take(client, site, vulnerable=True)
    state = client.get(f"{API}/staff/counters/{site.counters[0]}", headers=site.headers["clerk"]).json
    assert state["open"] is True and state["current"] is None and state["waiting_total"] == 2
    assert [w["ticket_id"] for w in state["waiting"]] == [b["ticket_id"], a["ticket_id"]]
    call(client, site)
    state = client.get(f"{API}/staff/counters/{site.counters[0]}", headers=site.headers["clerk"]).json
    assert state["current"]["ticket_id"] == b["ticket_id"]


def test_staff_of_another_centre_and_citizens_cannot_work_the_counters(kit, make, client):
    site, elsewhere = kit.site(), kit.site()
    open_counter(client, site)
    take(client, site)
    ticket = call(client, site).json
    routes = [
        ("POST", f"{API}/staff/counters/{site.counters[0]}/open", {"services": [site.other.code]}),
        ("POST", f"{API}/staff/counters/{site.counters[0]}/call-next"),
        ("POST", f"{API}/staff/counters/{site.counters[0]}/close"),
        ("GET", f"{API}/staff/counters/{site.counters[0]}"),
        ("POST", f"{API}/staff/tickets/{ticket['ticket_id']}/recall"),
        ("POST", f"{API}/staff/tickets/{ticket['ticket_id']}/start"),
        ("POST", f"{API}/staff/tickets/{ticket['ticket_id']}/complete"),
        ("POST", f"{API}/staff/tickets/{ticket['ticket_id']}/no-show"),
        ("POST", f"{API}/staff/tickets/{ticket['ticket_id']}/transfer", {"service": site.passport.code}),
        ("GET", f"{API}/staff/centres/{site.centre.id}/stats"),
    ]
    assert_forbidden(client, routes, elsewhere.headers["clerk"])
    assert_forbidden(client, routes, make.headers(make.citizen()))
    assert_forbidden(client, routes, site.kiosk)
    assert_needs_auth(client, routes)
    # Nothing changed.
    assert kit.make.fresh(Ticket, ticket["ticket_id"]).status == "called"


def test_citizen_is_told_to_go_to_the_counter_and_when_the_turn_is_near(kit, make, client):
    from sqlalchemy import select

    from app.extensions import db
    from notifications.models import Notification

    site = kit.site(remote=True)
    open_counter(client, site)
    people = [make.citizen() for _ in range(5)]
    tickets = [take(client, site, headers=make.headers(p)) for p in people]
    call(client, site)
    rows = kit.call(
        lambda: [
            (n.account_id, n.kind) for n in db.session.scalars(select(Notification).order_by(Notification.id))
        ]
    )
    assert (people[0].id, "ticket_called") in rows
    # TURN_NEAR_AHEAD = 3: the next four (0..3 ahead) are told once.
    near = {account for account, kind in rows if kind == "turn_near"}
    assert near == {p.id for p in people[1:5]}
    act(client, site, tickets[0]["ticket_id"], "complete")
    call(client, site)
    rows = kit.call(lambda: [(n.account_id, n.kind) for n in db.session.scalars(select(Notification))])
    assert sum(1 for _, kind in rows if kind == "turn_near") == 4


def test_waiting_counts_follow_each_change_and_are_counted_again_when_redis_lost_them(kit, client):
    """The counts screens show move with every issue, call, put-back and transfer; they come back from the
    database when Redis has none, and are rebuilt periodically so a change made behind Redis's back heals."""
    site = kit.site()
    other, passport = site.other.code, site.passport.code

    def shown():
        return client.get(f"{API}/centres/{site.centre.id}/queue").json["waiting"]

    def counted():
        return kit.call(lambda: live._count_waiting(site.centre.id))

    first = take(client, site)
    take(client, site)
    kept = take(client, site, site.passport)
    assert shown() == counted() == {other: 2, passport: 1}
    open_counter(client, site, services=[site.other])
    assert call(client, site).json["ticket_id"] == first["ticket_id"]
    assert shown() == counted() == {other: 1, passport: 1}
    # Calling again puts the unanswered call back first (same place), then takes it again.
    assert call(client, site).json["ticket_id"] == first["ticket_id"]
    assert shown() == {other: 1, passport: 1}
    assert act(client, site, kept["ticket_id"], "transfer", service=other).status_code == 200
    assert shown() == counted() == {other: 2}
    assert act(client, site, first["ticket_id"], "complete").status_code == 200
    assert call(client, site).status_code == 200
    assert shown() == counted() == {other: 1}

    redis = kit.call(get_redis)
    key = live.waiting_key(site.centre.id)
    assert 0 < redis.ttl(key) <= live.WAITING_COUNTS_SECONDS  # rebuilt at least this often
    redis.delete(key)
    assert shown() == {other: 1}
    # A change behind Redis's back shows once the counts are rebuilt.
    kit.call(
        lambda: (db.session.execute(Ticket.__table__.update().values(status="expired")), db.session.commit())
    )
    assert shown() == {other: 1}
    redis.delete(key)  # what the expiry does
    assert shown() == counted() == {}
    # An increment on counts Redis no longer has does not stand in for them: the change counts again.
    redis.delete(key)
    take(client, site)
    assert redis.hget(key, other) == "1" and not redis.exists(f"{key}:recounting")
    assert shown() == counted() == {other: 1}


def test_call_next_and_complete_answer_as_the_ticket_reads_in_a_few_statements(kit, client):
    """The answers are built by the statements that change the ticket (nothing is read again after the
    commit), and say what reading the ticket says."""
    site = kit.site()
    open_counter(client, site, counter=site.counters[1])
    first, _ = take(client, site), take(client, site, site.passport)
    engine = kit.call(lambda: db.engine)
    statements: list[str] = []
    transactions: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE
            statements.append(statement)

    def began(conn) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # else no BEGIN is sent
            transactions.append("begin")

    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "begin", began)
    try:
        called = call(client, site, counter=site.counters[1])
        call_statements, statements[:] = len(statements), []
        call_transactions, transactions[:] = len(transactions), []
        done = act(client, site, first["ticket_id"], "complete")
        complete_statements, complete_transactions = len(statements), len(transactions)
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "begin", began)
    assert called.status_code == done.status_code == 200
    # Lock the counter's session; finish its ticket and read the head (SQLite: two statements); claim
    # (SQLite: then read its centre and counter).
    assert (call_statements, complete_statements) == ((3, 1) if IS_POSTGRES else (5, 2))
    # A call is one transaction; completing a ticket with no booking behind it is one UPDATE in autocommit
    # on PostgreSQL (no BEGIN, no COMMIT).
    assert (call_transactions, complete_transactions) == ((1, 0) if IS_POSTGRES else (1, 1))
    read = client.get(f"{API}/tickets/{first['ticket_id']}", headers=site.headers["clerk"]).json
    assert done.json == read
    assert called.json == {
        **read,
        "status": "called",
        "ended_at": None,
        "started_at": None,
        "position": 0,
        "estimated_wait_minutes": 0,
    }
    assert called.json["counter"] == {
        "id": site.counters[1],
        "number": 2,
        "name_ar": "شباك 2",
        "name_en": "Counter 2",
    }
    assert called.json["called_at"].endswith("+03:00")  # in the centre's zone


def test_completing_the_visit_completes_its_booking(kit, make, client):
    from booking.models import Booking

    site = kit.site()
    booking = kit.booking(site, make.citizen())
    checked = client.post(
        f"{API}/centres/{site.centre.id}/check-in", json={"reference": booking.reference}, headers=site.kiosk
    )
    assert checked.status_code == 201, checked.json
    walk_in = take(client, site)
    open_counter(client, site)
    assert call(client, site).json["ticket_id"] == checked.json["ticket_id"]  # due appointment first
    assert act(client, site, checked.json["ticket_id"], "start").status_code == 200
    assert call(client, site).json["error"]["code"] == "ticket_in_service"
    assert act(client, site, checked.json["ticket_id"], "complete").status_code == 200
    assert kit.make.fresh(Ticket, checked.json["ticket_id"]).status == "done"
    assert kit.make.fresh(Booking, booking.id).status == "completed"
    assert call(client, site).json["ticket_id"] == walk_in["ticket_id"]
    assert client.get(f"{API}/centres/{site.centre.id}/queue").json["waiting"] == {}
