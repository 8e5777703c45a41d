"""The urgent passport path: request, supervisor decision, urgent booking, urgent ticket served first,
the yearly quota, and an audit log that nobody can change."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from tests.authz import assert_forbidden, assert_hidden_from, assert_needs_auth
from tests.conftest import IS_POSTGRES
from ticketing.models import Ticket, UrgentRequest

API = "/api/v1"


def today_in(site) -> dt.date:
    import zoneinfo

    return clock.now().astimezone(zoneinfo.ZoneInfo(site.centre.timezone)).date()


def ask(client, site, headers, **overrides):
    body = {
        "service": site.passport.code,
        "centre_id": site.centre.id,
        "reason_code": "medical",
        "travel_date": (today_in(site) + dt.timedelta(days=3)).isoformat(),
        "details": "Surgery abroad on Thursday",
    }
    body.update(overrides)
    return client.post(f"{API}/urgent-requests", json=body, headers=headers)


def approve(client, site, request_id, day=None, who="supervisor", note="Medical letter seen"):
    return client.post(
        f"{API}/staff/urgent-requests/{request_id}/approve",
        json={"date": (day or today_in(site)).isoformat(), "note": note},
        headers=site.headers[who],
    )


def audit_actions(kit):
    return kit.call(
        lambda: [a.action for a in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    )


def test_urgent_request_end_to_end_is_served_first(kit, make, client):
    from booking.models import Booking
    from notifications.models import Notification

    site = kit.site()
    citizen = make.citizen()
    headers = make.headers(citizen)
    r = ask(client, site, headers)
    assert r.status_code == 201, r.json
    request = r.json
    assert request["status"] == "pending" and request["service"] == site.passport.code
    assert request["created_at"].endswith("+03:00") and request["timezone"] == "Asia/Amman"
    again = ask(client, site, headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "urgent_request_pending"

    listed = client.get(
        f"{API}/staff/centres/{site.centre.id}/urgent-requests",
        query_string={"status": "pending"},
        headers=site.headers["supervisor"],
    ).json
    assert [x["id"] for x in listed] == [request["id"]] and listed[0]["account_id"] == citizen.id

    r = approve(client, site, request["id"])
    assert r.status_code == 200, r.json
    approved = r.json
    assert approved["status"] == "approved" and approved["approved_date"] == today_in(site).isoformat()
    assert approved["decided_by"] == site.supervisor.id and approved["note"] == "Medical letter seen"
    assert client.get(f"{API}/urgent-requests/{request['id']}", headers=headers).json["status"] == "approved"
    booking = make.fresh(Booking, approved["booking_id"])
    assert booking.kind == "urgent" and booking.status == "confirmed" and booking.account_id == citizen.id
    assert approve(client, site, request["id"]).json["error"]["code"] == "urgent_already_decided"
    kinds = kit.call(
        lambda: [
            n.kind
            for n in db.session.scalars(select(Notification).where(Notification.account_id == citizen.id))
        ]
    )
    assert kinds == ["urgent_approved"]

    # Walk-ins were there first, but the urgent pass is served first once checked in at the kiosk.
    for _ in range(3):
        client.post(
            f"{API}/centres/{site.centre.id}/tickets",
            json={"service": site.passport.code},
            headers=site.kiosk,
        )
    r = client.post(
        f"{API}/centres/{site.centre.id}/check-in", json={"reference": booking.reference}, headers=site.kiosk
    )
    assert r.status_code == 201, r.json
    ticket = r.json
    assert ticket["source"] == "urgent" and ticket["position"] == 1 and ticket["priority"] == 0
    assert make.fresh(UrgentRequest, request["id"]).status == "used"
    client.post(
        f"{API}/staff/counters/{site.counters[0]}/open",
        json={"services": [site.passport.code]},
        headers=site.headers["clerk"],
    )
    called = client.post(
        f"{API}/staff/counters/{site.counters[0]}/call-next", headers=site.headers["clerk"]
    ).json
    assert called["ticket_id"] == ticket["ticket_id"]
    done = client.post(
        f"{API}/staff/tickets/{called['ticket_id']}/complete", headers=site.headers["clerk"]
    ).json
    assert done["status"] == "done"
    assert make.fresh(Booking, booking.id).status == "completed"
    assert audit_actions(kit) == ["urgent_request.approved"]


def test_rejection_needs_a_note_and_is_audited(kit, make, client):
    from notifications.models import Notification

    site = kit.site()
    citizen = make.citizen()
    request = ask(client, site, make.headers(citizen)).json
    r = client.post(
        f"{API}/staff/urgent-requests/{request['id']}/reject", json={}, headers=site.headers["supervisor"]
    )
    assert r.status_code == 422
    r = client.post(
        f"{API}/staff/urgent-requests/{request['id']}/reject",
        json={"note": "Travel date is months away: please book a regular appointment."},
        headers=site.headers["supervisor"],
    )
    assert r.status_code == 200 and r.json["status"] == "rejected"
    entries = kit.call(
        lambda: [(a.action, a.actor_id, a.reason) for a in db.session.scalars(select(AuditEntry))]
    )
    assert entries == [
        (
            "urgent_request.rejected",
            site.supervisor.id,
            "Travel date is months away: please book a regular appointment.",
        )
    ]
    assert kit.call(
        lambda: db.session.scalar(select(Notification.kind).where(Notification.account_id == citizen.id))
    ) == ("urgent_rejected")
    # A rejection does not use the quota, and the citizen may ask again.
    assert ask(client, site, make.headers(citizen)).status_code == 201


def test_at_most_two_approvals_in_365_days(kit, make, client):
    site = kit.site(urgent_reserve=5)
    citizen = make.citizen()
    headers = make.headers(citizen)
    for _ in range(2):
        request = ask(client, site, headers).json
        assert approve(client, site, request["id"]).status_code == 200
    r = ask(client, site, headers)
    assert r.status_code == 409 and r.json["error"]["code"] == "urgent_quota_exceeded"
    clock.shift(dt.timedelta(days=366))
    assert ask(client, site, make.headers(citizen)).status_code == 201


def test_an_exhausted_reserve_leaves_the_request_pending(kit, make, client):
    site = kit.site(urgent_reserve=1)
    first, second = make.citizen(), make.citizen()
    one = ask(client, site, make.headers(first)).json
    two = ask(client, site, make.headers(second)).json
    assert approve(client, site, one["id"]).status_code == 200
    r = approve(client, site, two["id"])
    assert r.status_code == 409, r.json
    assert make.fresh(UrgentRequest, two["id"]).status == "pending"
    # Another day still has its reserve.
    assert approve(client, site, two["id"], day=today_in(site) + dt.timedelta(days=1)).status_code == 200
    assert audit_actions(kit) == ["urgent_request.approved", "urgent_request.approved"]


def test_only_passport_services_from_today_on(kit, make, client):
    site = kit.site()
    headers = make.headers(make.citizen())
    r = ask(client, site, headers, service=site.other.code)
    assert r.status_code == 422 and r.json["error"]["code"] == "urgent_not_allowed"
    r = ask(client, site, headers, travel_date=(today_in(site) - dt.timedelta(days=1)).isoformat())
    assert r.status_code == 422 and r.json["error"]["code"] == "invalid_date"
    r = ask(client, site, headers, reason_code="bored")
    assert r.status_code == 422
    request = ask(client, site, headers).json
    r = approve(client, site, request["id"], day=today_in(site) - dt.timedelta(days=1))
    assert r.status_code == 422 and r.json["error"]["code"] == "invalid_date"


def test_who_may_see_and_decide(kit, make, client):
    site, elsewhere = kit.site(), kit.site()
    owner, stranger = make.citizen(), make.citizen()
    request = ask(client, site, make.headers(owner)).json
    assert_hidden_from(client, [("GET", f"{API}/urgent-requests/{request['id']}")], make.headers(stranger))
    assert client.get(f"{API}/urgent-requests", headers=make.headers(stranger)).json == []
    decisions = [
        (
            "POST",
            f"{API}/staff/urgent-requests/{request['id']}/approve",
            {"date": today_in(site).isoformat()},
        ),
        ("POST", f"{API}/staff/urgent-requests/{request['id']}/reject", {"note": "no"}),
        ("GET", f"{API}/staff/centres/{site.centre.id}/urgent-requests"),
        (
            "POST",
            f"{API}/staff/centres/{site.centre.id}/urgent-tickets",
            {"service": site.passport.code, "reason": "x-ray"},
        ),
        ("GET", f"{API}/staff/centres/{site.centre.id}/audit-log"),
    ]
    assert_forbidden(client, decisions, site.headers["clerk"])  # clerks do not decide
    assert_forbidden(client, decisions, elsewhere.headers["supervisor"])  # another centre's supervisor
    assert_forbidden(client, decisions, make.headers(owner))
    assert_forbidden(client, decisions, site.kiosk)
    assert_needs_auth(client, decisions)
    assert make.fresh(UrgentRequest, request["id"]).status == "pending"
    assert audit_actions(kit) == []


def test_supervisor_issues_an_urgent_ticket_to_a_walk_in_with_a_reason(kit, client):
    site = kit.site()
    r = client.post(
        f"{API}/staff/centres/{site.centre.id}/urgent-tickets",
        json={"service": site.passport.code, "reason": "Patient flying for treatment tonight"},
        headers=site.headers["supervisor"],
    )
    assert r.status_code == 201, r.json
    assert r.json["source"] == "urgent" and r.json["number"] == "P-001"
    log = client.get(
        f"{API}/staff/centres/{site.centre.id}/audit-log", headers=site.headers["supervisor"]
    ).json
    assert len(log) == 1
    assert log[0]["action"] == "urgent_ticket.issued" and log[0]["subject_id"] == str(r.json["ticket_id"])
    assert (
        log[0]["actor_id"] == site.supervisor.id
        and log[0]["reason"] == "Patient flying for treatment tonight"
    )


def test_the_audit_log_has_no_way_to_change_it(kit, client, app):
    site = kit.site()
    client.post(
        f"{API}/staff/centres/{site.centre.id}/urgent-tickets",
        json={"service": site.passport.code, "reason": "Emergency travel"},
        headers=site.headers["supervisor"],
    )
    base = f"{API}/staff/centres/{site.centre.id}/audit-log"
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.open(base, method=method, headers=site.headers["supervisor"]).status_code == 405
    rules = [r for r in app.url_map.iter_rules() if "audit" in r.rule]
    assert all(r.methods <= {"GET", "HEAD", "OPTIONS"} for r in rules)


@pytest.mark.postgres_only
def test_postgres_refuses_to_update_or_delete_audit_entries(kit, client):
    site = kit.site()
    client.post(
        f"{API}/staff/centres/{site.centre.id}/urgent-tickets",
        json={"service": site.passport.code, "reason": "Emergency travel"},
        headers=site.headers["supervisor"],
    )

    def tamper(sql: str):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.session.execute(sa.text(sql))
        db.session.rollback()

    kit.call(tamper, "UPDATE audit_log SET reason = 'nothing happened'")
    kit.call(tamper, "DELETE FROM audit_log")
    assert kit.call(lambda: db.session.scalar(select(AuditEntry.reason))) == "Emergency travel"
    assert IS_POSTGRES


def test_an_urgent_ticket_is_a_ticket_for_the_queue(kit, make, client):
    """An approved pass checked in by the citizen in the app is an urgent ticket too."""
    from booking.models import Booking

    site = kit.site()
    citizen = make.citizen()
    request = ask(client, site, make.headers(citizen)).json
    approved = approve(client, site, request["id"]).json
    reference = make.fresh(Booking, approved["booking_id"]).reference
    r = client.post(f"{API}/bookings/{reference}/check-in", headers=make.headers(citizen))
    assert r.status_code == 201, r.json
    assert r.json["source"] == "urgent"
    ticket = make.fresh(Ticket, r.json["ticket_id"])
    assert ticket.urgent_request_id == request["id"] and ticket.account_id == citizen.id
