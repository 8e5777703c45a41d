"""Several services in one visit: one ticket carries them in order, requeued in each next service's queue
with its number and issue time; check-ins of one citizen's bookings at a centre on a day join one ticket."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from app import clock
from app.extensions import db
from tests.ticketing.conftest import principal_of
from ticketing import counters, live, services, stats
from ticketing.models import Ticket, TicketSequence, TicketService

API = "/api/v1"


def take(client, site, body, headers=None):
    return client.post(f"{API}/centres/{site.centre.id}/tickets", json=body, headers=headers or site.kiosk)


def _open(client, kit, account, counter, codes):
    r = client.post(
        f"{API}/staff/counters/{counter}/open", json={"services": codes}, headers=kit.make.headers(account)
    )
    assert r.status_code == 200, r.json


def _act(client, site, ticket_id, action, who="clerk"):
    return client.post(f"{API}/staff/tickets/{ticket_id}/{action}", headers=site.headers[who])


def _call(client, site, counter, who="clerk"):
    return client.post(f"{API}/staff/counters/{counter}/call-next", headers=site.headers[who])


def _events(kit, centre_id: str) -> list[dict]:
    return [json.loads(e) for e in kit.call(live.events_since, centre_id, 0) or []]


def test_a_ticket_of_two_services_is_served_in_order_keeping_its_number_and_place(kit, client):
    site = kit.site(counters=2)
    A, B = site.other, site.passport
    first = take(client, site, {"services": [A.code, B.code]})
    assert first.status_code == 201, first.json
    body = first.json
    assert body["services"] == [A.code, B.code] and body["current_service"] == body["service"] == A.code
    assert body["services_left"] == 1 and body["party_size"] == 1 and body["number"] == "C-001"
    # Nobody ahead, but the visit's own time at A (6 minutes) comes before B is called.
    assert body["position"] == 1 and body["estimated_wait_minutes"] == 6
    # A single `service` still works, as a visit of one service.
    public = client.get(f"{API}/public-tickets/{body['public_id']}")
    assert public.status_code == 200 and [s["code"] for s in public.json["services"]] == [A.code, B.code]
    later_b = take(client, site, {"service": B.code}).json
    assert later_b["services"] == [B.code] and later_b["services_left"] == 0

    _open(client, kit, site.clerk, site.counters[0], [A.code])
    _open(client, kit, site.clerk2, site.counters[1], [B.code])
    called = _call(client, site, site.counters[0])
    assert called.status_code == 200 and called.json["ticket_id"] == body["ticket_id"]
    done_a = _act(client, site, body["ticket_id"], "complete")
    assert done_a.status_code == 200, done_a.json
    requeued = done_a.json
    assert requeued["status"] == "waiting" and requeued["current_service"] == B.code
    assert requeued["number"] == "C-001" and requeued["issued_at"] == body["issued_at"]
    assert requeued["services_left"] == 0 and requeued["counter"] is None
    # Issued before the ticket that came for B alone: it is not sent to the back.
    assert requeued["position"] == 1
    event = [e for e in _events(kit, site.centre.id) if e["type"] == live.TICKET_REQUEUED]
    assert len(event) == 1
    assert (
        event[0]["number"] == "C-001" and event[0]["service"] == B.code and event[0]["from_service"] == A.code
    )

    # The counter serving only A has nobody left; B's counter calls the same number again.
    assert _call(client, site, site.counters[0]).status_code == 204
    again = _call(client, site, site.counters[1], who="clerk2")
    assert again.status_code == 200 and again.json["number"] == "C-001"
    calls = [e for e in _events(kit, site.centre.id) if e["type"] == live.TICKET_CALLED]
    assert [e["number"] for e in calls] == ["C-001", "C-001"] and calls[-1]["service"] == B.code
    snapshot = client.get(f"{API}/centres/{site.centre.id}/queue").json
    assert snapshot["recent_calls"][0]["number"] == "C-001"
    finished = _act(client, site, body["ticket_id"], "complete", who="clerk2")
    assert finished.status_code == 200 and finished.json["status"] == "done"

    figures = kit.call(
        lambda: stats.centre_stats(
            centre_id=site.centre.id, day=None, principal=principal_of(site.supervisor)
        )
    )
    by_service = {row["service_code"]: row for row in figures["by_service"]}
    assert by_service[A.code]["services_served"] == 1 and by_service[B.code]["services_served"] == 1
    assert by_service[A.code]["issued"] == 1 and by_service[B.code]["issued"] == 1
    assert figures["tickets"] == 2


def test_services_refused_write_nothing(kit, client):
    site = kit.site()
    elsewhere = kit.make.service(code=f"elsewhere.{site.centre.id}", ticket_prefix="E")
    refused = take(client, site, {"services": [site.other.code, elsewhere.code]})
    assert refused.status_code == 422 and refused.json["error"]["code"] == "visit_service_not_offered"
    assert refused.json["error"]["details"]["service"] == elsewhere.code
    assert elsewhere.code in refused.json["error"]["message"]
    in_arabic = take(
        client, site, {"services": [elsewhere.code]}, headers={**site.kiosk, "Accept-Language": "ar"}
    ).json["error"]["message"]
    assert in_arabic == f"الخدمة {elsewhere.code} غير متوفرة في هذا المركز."
    extra = [kit.make.service(code=f"more.{site.centre.id}.{i}", ticket_prefix="M") for i in range(3)]
    for service in extra:
        kit.make.offering(site.centre, service)
    five = [site.other.code, site.passport.code, *(s.code for s in extra)]
    for body in (
        {"services": [site.other.code, site.other.code]},
        {"services": five},
        {"services": []},
        {"service": site.other.code, "services": [site.passport.code]},
        {},
    ):
        r = take(client, site, body)
        assert r.status_code == 422, (body, r.json)
    assert take(client, site, {"services": five[:4]}).json["services_left"] == 3
    counts = kit.call(
        lambda: (
            db.session.scalar(select(func.count()).select_from(Ticket)),
            db.session.scalar(select(func.count()).select_from(TicketSequence)),
        )
    )
    assert counts == (1, 1)  # only the last, accepted ticket


def test_a_counter_takes_a_requeued_ticket_only_from_the_stream_it_serves(kit, ctx):
    """Read in A's stream, requeued into B meanwhile: a counter serving A only cannot claim it."""
    from ticketing import ordering

    site = kit.site(counters=2)
    A, B = site.other, site.passport
    clerk, clerk2 = principal_of(site.clerk), principal_of(site.clerk2)
    counters.open_counter(counter_id=site.counters[0], services=[A.code, B.code], principal=clerk)
    counters.open_counter(counter_id=site.counters[1], services=[A.code], principal=clerk2)
    ticket = services.issue_walk_in_ticket(centre_id=site.centre.id, services=[A.code, B.code])
    stale = ordering.head_of_queue(site.centre.id, [A.code], now=clock.now()).exact()
    db.session.rollback()
    called = services.call_next_ticket(counter_id=site.counters[0], principal=clerk)
    services.complete_ticket(ticket_id=called.id, principal=clerk)
    assert db.session.get(Ticket, ticket.id).service_code == B.code
    taken = ordering.claim_first(
        stale, counter_id=site.counters[1], clerk_id=clerk2.id, now=clock.now(), skip_locked=True
    )
    assert taken is None
    db.session.rollback()
    assert services.call_next_ticket(counter_id=site.counters[1], principal=clerk2) is None
    again = services.call_next_ticket(counter_id=site.counters[0], principal=clerk)
    assert again.id == ticket.id and again.service_code == B.code
    services.complete_ticket(ticket_id=again.id, principal=clerk)
    served = db.session.execute(select(TicketService.ticket_id, TicketService.service_code)).all()
    assert served == [(ticket.id, A.code)]
    assert db.session.get(Ticket, ticket.id, populate_existing=True).status == "done"


def _check_in(client, site, booking):
    r = client.post(
        f"{API}/centres/{site.centre.id}/check-in", json={"reference": booking.reference}, headers=site.kiosk
    )
    assert r.status_code == 201, r.json
    return r.json


def test_one_check_in_gives_one_ticket_for_the_citizens_bookings_of_the_day_in_slot_order(kit, client, make):
    # Mid-morning in Amman: its bookings, minutes ahead, fall on the same local day at any hour of the run
    # (unpinned, a run just before local midnight put the last one on the next day there).
    clock.travel_to(dt.datetime(2030, 5, 1, 7, 0, tzinfo=dt.UTC))
    site = kit.site()
    citizen = make.citizen()
    third = kit.make.service(code=f"third.{site.centre.id}", ticket_prefix="T", group="third")
    kit.make.offering(site.centre, third)
    late = kit.booking(site, citizen, service=site.passport, starts_in=dt.timedelta(minutes=8))
    early = kit.booking(site, citizen, service=site.other, starts_in=dt.timedelta(minutes=2))
    middle = kit.booking(site, citizen, service=third, starts_in=dt.timedelta(minutes=5))
    stranger = kit.booking(site, make.citizen(), service=site.other, starts_in=dt.timedelta(minutes=3))

    ticket = _check_in(client, site, late)
    assert ticket["services"] == [site.other.code, third.code, site.passport.code]
    assert ticket["current_service"] == site.other.code and ticket["services_left"] == 2
    assert ticket["source"] == "appointment" and ticket["party_size"] == 1
    assert _check_in(client, site, stranger)["ticket_id"] != ticket["ticket_id"]
    from booking.models import Booking

    statuses = kit.call(
        lambda: {
            b.id: b.status
            for b in db.session.scalars(select(Booking).where(Booking.account_id == citizen.id))
        }
    )
    assert statuses == {late.id: "checked_in", early.id: "checked_in", middle.id: "checked_in"}
    tickets = kit.call(lambda: db.session.scalar(select(func.count()).select_from(Ticket)))
    assert tickets == 2
    # Each booking is completed with its own service.
    clerk = principal_of(site.clerk)

    def serve_all() -> list[str]:
        counters.open_counter(
            counter_id=site.counters[0],
            services=[site.other.code, site.passport.code, third.code],
            principal=clerk,
        )
        order = []
        while (called := services.call_next_ticket(counter_id=site.counters[0], principal=clerk)) is not None:
            if called.account_id != citizen.id:
                services.complete_ticket(ticket_id=called.id, principal=clerk)
                continue
            order.append(called.service_code)
            services.complete_ticket(ticket_id=called.id, principal=clerk)
            statuses = dict(
                db.session.execute(
                    select(Booking.service_code, Booking.status).where(Booking.account_id == citizen.id)
                ).all()
            )
            assert statuses[called.service_code] == "completed"
        return order

    assert kit.call(serve_all) == [site.other.code, third.code, site.passport.code]


def test_a_booking_checked_in_later_joins_the_waiting_ticket_among_services_to_come(kit, client, make):
    """Its check-in window was not open at the first check-in: checked in later, it joins the ticket (which
    keeps its number) in slot order among the services still to come, instead of taking another ticket."""
    # Mid-morning in Amman: its bookings, up to 50 minutes ahead, fall on the same local day at any hour
    # of the run (unpinned, a run after 20:10 UTC put the last one on the next day there).
    clock.travel_to(dt.datetime(2030, 5, 1, 7, 0, tzinfo=dt.UTC))
    site = kit.site()
    citizen = make.citizen()
    third = kit.make.service(code=f"third.{site.centre.id}", ticket_prefix="T", group="third")
    kit.make.offering(site.centre, third)
    now_b = kit.booking(site, citizen, service=site.other, starts_in=dt.timedelta(minutes=2))
    last_b = kit.booking(site, citizen, service=site.passport, starts_in=dt.timedelta(minutes=50))
    mid_b = kit.booking(site, citizen, service=third, starts_in=dt.timedelta(minutes=40))
    first = _check_in(client, site, now_b)
    assert first["services"] == [site.other.code]  # the others' windows open later
    kit.call(clock.shift, dt.timedelta(minutes=35))
    second = _check_in(client, site, last_b)
    # mid_b's window is open now too: both join, in slot order.
    assert second["ticket_id"] == first["ticket_id"] and second["number"] == first["number"]
    assert second["services"] == [site.other.code, third.code, site.passport.code]
    assert second["services_left"] == 2 and second["current_service"] == site.other.code
    assert kit.call(lambda: db.session.scalar(select(func.count()).select_from(Ticket))) == 1
    assert mid_b is not None


def test_a_family_booking_gives_a_ticket_with_its_party_size(kit, client, make):
    """`party_size` is the booking's seats where bookings have seats, else 1 (read with a default)."""
    site = kit.site()
    booking = kit.booking(site, make.citizen(), service=site.other)
    from booking.models import Booking

    has_seats = hasattr(Booking, "seats")
    if has_seats:
        kit.call(lambda: (setattr(db.session.get(Booking, booking.id), "seats", 3), db.session.commit()))
    r = client.post(
        f"{API}/centres/{site.centre.id}/check-in", json={"reference": booking.reference}, headers=site.kiosk
    )
    assert r.status_code == 201, r.json
    assert r.json["party_size"] == (3 if has_seats else 1)


def test_the_citizen_is_told_where_to_go_for_each_service(kit, client, make):
    from notifications.models import Notification

    site = kit.site(remote=True)
    citizen = make.citizen()
    mine = take(
        client, site, {"services": [site.other.code, site.passport.code]}, headers=make.headers(citizen)
    )
    assert mine.status_code == 201, mine.json
    _open(client, kit, site.clerk, site.counters[0], [site.other.code, site.passport.code])
    for _ in range(2):
        assert _call(client, site, site.counters[0]).json["ticket_id"] == mine.json["ticket_id"]
        assert _act(client, site, mine.json["ticket_id"], "complete").status_code == 200
    kinds = kit.call(
        lambda: [
            n.kind
            for n in db.session.scalars(select(Notification).where(Notification.account_id == citizen.id))
        ]
    )
    assert kinds.count("ticket_called") == 2


def test_two_bookings_of_one_citizen_checked_in_at_the_same_moment_give_one_ticket(kit, make):
    """The kiosk and the app at once (PostgreSQL: one skips the booking the other is checking in, then
    waits its turn and joins the ticket the other made)."""
    # Mid-morning in Amman: its bookings, minutes ahead, fall on the same local day at any hour of the run
    # (unpinned, a run just before local midnight put the last one on the next day there).
    clock.travel_to(dt.datetime(2030, 5, 1, 7, 0, tzinfo=dt.UTC))
    site = kit.site()
    for attempt in range(3):
        citizen = make.citizen()
        bookings = [
            kit.booking(site, citizen, service=site.other, starts_in=dt.timedelta(minutes=2 + attempt)),
            kit.booking(site, citizen, service=site.passport, starts_in=dt.timedelta(minutes=4 + attempt)),
        ]
        results = kit.race(
            lambda b: (
                services.check_in_booking(reference=b.reference, centre_id=site.centre.id, allow_late=True).id
            ),
            bookings,
            workers=2,
        )
        assert all(isinstance(r, int) for r in results), results
        assert results[0] == results[1]
        visit = kit.call(lambda: db.session.get(Ticket, results[0]).services)
        assert visit == [site.other.code, site.passport.code]
