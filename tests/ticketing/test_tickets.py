"""Taking tickets: kiosks, clerks and the app; numbering per centre, service and local day; positions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app import clock
from app.extensions import db
from tests.authz import assert_forbidden, assert_hidden_from, assert_needs_auth
from ticketing import counters, services
from ticketing.models import Ticket

API = "/api/v1"


def take(client, site, service=None, headers=None, vulnerable=False):
    return client.post(
        f"{API}/centres/{site.centre.id}/tickets",
        json={"service": (service or site.other).code, "vulnerable": vulnerable},
        headers=headers or site.kiosk,
    )


def test_kiosk_ticket_has_number_position_and_wait(kit, client):
    site = kit.site()
    first = take(client, site)
    assert first.status_code == 201, first.json
    body = first.json
    assert {"ticket_id", "number", "status", "position", "estimated_wait_minutes"} <= set(body)
    assert body["number"] == "C-001" and body["status"] == "waiting" and body["source"] == "walk_in"
    assert body["position"] == 1 and body["estimated_wait_minutes"] == 0
    assert body["timezone"] == "Asia/Amman" and body["issued_at"].endswith("+03:00")
    second = take(client, site).json
    assert second["number"] == "C-002" and second["position"] == 2
    # No counter open yet: one visit of the service's average (6 minutes) ahead, as if one counter served.
    assert second["estimated_wait_minutes"] == 6
    # Another service has its own sequence and prefix.
    assert take(client, site, site.passport).json["number"] == "P-001"


def test_a_new_tickets_place_is_the_one_read_again_at_once(kit, client, monkeypatch):
    """On PostgreSQL the place of a one-service walk-in is read by the statement that numbers it: the answer
    is what reading the ticket again gives, plain and vulnerable tickets mixed (the bonus moves the
    vulnerable ahead), with tickets issued at the very same instant ranked by id."""
    from app import clock as clock_module

    site = kit.site()
    counter = site.counters[0]
    r = client.post(
        f"{API}/staff/counters/{counter}/open",
        json={"services": [site.other.code]},
        headers=kit.make.headers(site.clerk),
    )
    assert r.status_code == 200, r.json
    for vulnerable in (False, False, True, False, True, False):
        issued = take(client, site, vulnerable=vulnerable)
        assert issued.status_code == 201, issued.json
        again = client.get(f"{API}/tickets/{issued.json['ticket_id']}", headers=site.kiosk)
        assert again.status_code == 200, again.json
        assert (issued.json["position"], issued.json["estimated_wait_minutes"]) == (
            again.json["position"],
            again.json["estimated_wait_minutes"],
        ), (vulnerable, issued.json, again.json)
    instant = clock_module.now()
    monkeypatch.setattr(clock_module, "now", lambda: instant)
    same = [take(client, site).json for _ in range(2)]
    assert same[1]["position"] == same[0]["position"] + 1


def test_wait_estimate_divides_by_counters_open_for_the_service(kit, client):
    site = kit.site(counters=3)
    for account, counter in ((site.clerk, site.counters[0]), (site.clerk2, site.counters[1])):
        r = client.post(
            f"{API}/staff/counters/{counter}/open",
            json={"services": [site.other.code]},
            headers=kit.make.headers(account),
        )
        assert r.status_code == 200, r.json
    numbers = [take(client, site).json for _ in range(5)]
    # 4 ahead × 6 minutes / 2 counters.
    assert numbers[-1]["position"] == 5 and numbers[-1]["estimated_wait_minutes"] == 12


def test_rolling_average_service_time_replaces_the_catalogue_figure(kit, ctx):
    site = kit.site()
    clerk = _principal(site.clerk)
    counters.open_counter(counter_id=site.counters[0], services=[site.other.code], principal=clerk)
    for minutes in (2, 4):
        services.issue_walk_in_ticket(centre_id=site.centre.id, service_code=site.other.code)
        called = services.call_next_ticket(counter_id=site.counters[0], principal=clerk)
        services.start_ticket(ticket_id=called.id, principal=clerk)
        clock.shift(dt.timedelta(minutes=minutes))
        services.complete_ticket(ticket_id=called.id, principal=clerk)
    assert (
        round(services.average_service_minutes(centre_id=site.centre.id, service_code=site.other.code)) == 3
    )


def _principal(account):
    from tests.ticketing.conftest import principal_of

    return principal_of(account)


def test_numbering_restarts_each_local_day_in_the_centre_zone(kit, client):
    site = kit.site()
    # 23:30 in Amman (UTC+3) is 20:30 UTC; half an hour later it is a new local day.
    clock.travel_to(dt.datetime(2030, 5, 1, 20, 30, tzinfo=dt.UTC))
    assert take(client, site).json["number"] == "C-001"
    assert take(client, site).json["number"] == "C-002"
    clock.shift(dt.timedelta(minutes=45))
    assert take(client, site).json["number"] == "C-001"
    dates = kit.call(lambda: sorted({t.local_date for t in db.session.scalars(select(Ticket))}))
    assert dates == [dt.date(2030, 5, 1), dt.date(2030, 5, 2)]


def test_numbers_never_repeat_under_fifty_parallel_kiosks(kit, app):
    site = kit.site()

    def issue(_):
        return services.issue_walk_in_ticket(centre_id=site.centre.id, service_code=site.other.code).number

    numbers = kit.race(issue, range(50), workers=50)
    assert not [n for n in numbers if not isinstance(n, str)], numbers
    assert sorted(numbers) == [f"C-{i:03d}" for i in range(1, 51)]
    seqs = kit.call(lambda: sorted(db.session.scalars(select(Ticket.seq))))
    assert seqs == list(range(1, 51))


def test_staff_take_tickets_only_in_their_centre_and_kiosks_too(kit, make, client):
    site, elsewhere = kit.site(), kit.site()
    assert take(client, site, headers=site.headers["clerk"]).status_code == 201
    assert_forbidden(
        client,
        [("POST", f"{API}/centres/{site.centre.id}/tickets", {"service": site.other.code})],
        elsewhere.headers["clerk"],
    )
    assert_forbidden(
        client,
        [("POST", f"{API}/centres/{site.centre.id}/tickets", {"service": site.other.code})],
        elsewhere.kiosk,
    )
    assert_needs_auth(
        client, [("POST", f"{API}/centres/{site.centre.id}/tickets", {"service": site.other.code})]
    )


def test_a_service_not_offered_is_refused(kit, make, client):
    site = kit.site()
    lonely = make.service(code="lands.nowhere")
    r = take(client, site, lonely)
    assert r.status_code == 409 and r.json["error"]["code"] == "service_not_offered"
    r = client.post(f"{API}/centres/{site.centre.id}/tickets", json={"service": "x"}, headers=site.kiosk)
    assert r.status_code == 422


def test_remote_tickets_only_where_the_centre_allows_them(kit, make, client):
    closed, open_ = kit.site(), kit.site(remote=True)
    citizen = make.citizen()
    headers = make.headers(citizen)
    r = take(client, closed, headers=headers)
    assert r.status_code == 403 and r.json["error"]["code"] == "remote_tickets_disabled"
    r = take(client, open_, headers=headers)
    assert r.status_code == 201 and r.json["source"] == "remote"
    # One active remote ticket per citizen.
    again = take(client, open_, open_.passport, headers=headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "active_ticket_exists"


def test_remote_ticket_vulnerability_comes_from_the_registry(kit, make, client):
    site = kit.site(remote=True)
    elderly = make.citizen(date_of_birth=dt.date(1940, 1, 1))
    r = take(client, site, headers=make.headers(elderly), vulnerable=False)
    assert r.json["vulnerable"] is True


def test_a_citizen_sees_only_their_own_tickets(kit, make, client):
    site = kit.site(remote=True)
    owner, other = make.citizen(), make.citizen()
    ticket = take(client, site, headers=make.headers(owner)).json
    r = client.get(f"{API}/tickets/{ticket['ticket_id']}", headers=make.headers(owner))
    assert r.status_code == 200 and r.json["number"] == ticket["number"]
    mine = client.get(f"{API}/tickets", headers=make.headers(owner)).json
    assert [t["ticket_id"] for t in mine] == [ticket["ticket_id"]]
    assert client.get(f"{API}/tickets", headers=make.headers(other)).json == []
    assert_hidden_from(
        client,
        [
            ("GET", f"{API}/tickets/{ticket['ticket_id']}"),
            ("GET", f"{API}/tickets/999999"),
            ("POST", f"{API}/tickets/{ticket['ticket_id']}/rating", {"score": 5}),
        ],
        make.headers(other),
    )
    # Staff of the centre may look; to staff and kiosks of another centre it does not exist (404, not 403).
    assert (
        client.get(f"{API}/tickets/{ticket['ticket_id']}", headers=site.headers["clerk"]).status_code == 200
    )
    elsewhere = kit.site()
    for headers in (elsewhere.headers["clerk"], elsewhere.kiosk):
        assert_hidden_from(client, [("GET", f"{API}/tickets/{ticket['ticket_id']}")], headers)


def test_idempotency_key_replays_the_same_ticket(kit, client):
    site = kit.site()
    headers = {**site.kiosk, "Idempotency-Key": "press-1"}
    first = take(client, site, headers=headers)
    second = take(client, site, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json["ticket_id"] == second.json["ticket_id"]
    assert second.headers.get("Idempotent-Replayed") == "true"


def test_public_snapshot_counts_waiting_per_service(kit, client):
    site = kit.site()
    take(client, site)
    take(client, site)
    take(client, site, site.passport)
    snap = client.get(f"{API}/centres/{site.centre.id}/queue").json
    assert snap["waiting"] == {site.other.code: 2, site.passport.code: 1}
    assert {s["code"]: s["waiting"] for s in snap["services"]} == {site.other.code: 2, site.passport.code: 1}
    assert snap["recent_calls"] == []
    assert client.get(f"{API}/centres/nowhere/queue").status_code == 404


def test_numbers_past_999_keep_every_digit(kit, client):
    """The number is written by the statement that allocates it (PostgreSQL): zero-padded to three digits,
    never cut to them."""
    from ticketing.models import TicketSequence

    site = kit.site()
    first = take(client, site).json
    kit.call(
        lambda: db.session.execute(db.update(TicketSequence).values(last_seq=998)) and db.session.commit()
    )
    assert first["number"] == "C-001"
    assert [take(client, site).json["number"] for _ in range(2)] == ["C-999", "C-1000"]
    assert kit.call(lambda: db.session.get(Ticket, take(client, site).json["ticket_id"]).number) == "C-1001"


def test_a_kiosk_ticket_is_three_statements_and_no_transaction_on_postgresql(kit, client):
    """The kiosk's token, the centre and service, then the number with the ticket and its position: each
    one statement, the write atomic by itself, so PostgreSQL runs them in autocommit (no BEGIN, no COMMIT).
    SQLite numbers in a statement of its own, in the session's transaction, and reads the position in the
    next one."""
    from sqlalchemy import event

    from tests.conftest import IS_POSTGRES

    site = kit.site()
    assert take(client, site).status_code == 201  # the statements compiled, the kiosk seen once
    engine = kit.call(lambda: db.engine)
    statements, transactions = [], []

    def count(conn, cursor, statement, *args) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE
            statements.append(statement)

    def began(conn) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            transactions.append("begin")

    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "begin", began)
    try:
        second = take(client, site)
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "begin", began)
    assert second.status_code == 201 and second.json["number"] == "C-002"
    assert second.json["position"] == 2
    assert (len(statements), len(transactions)) == ((3, 0) if IS_POSTGRES else (5, 2)), statements
