"""A centre's day: ratings, the day's figures against a hand count, and the close of day."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app import clock
from app.extensions import db
from tests.factories import WEEKDAYS_OPEN
from ticketing import tasks
from ticketing.models import CounterSession, Ticket

API = "/api/v1"
DAY = dt.date(2030, 5, 1)  # a Wednesday


def at(hhmm: str) -> None:
    """Move the clock to HH:MM in Amman (UTC+3) on DAY."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    clock.travel_to(dt.datetime(DAY.year, DAY.month, DAY.day, hour - 3, minute, tzinfo=dt.UTC))


class Desk:
    """Sends the day's requests with tokens issued at the (moved) clock's time."""

    def __init__(self, client, site, make):
        self.client, self.site, self.make = client, site, make

    def h(self, who):
        return self.make.headers(getattr(self.site, who))

    def take(self, service, headers=None):
        r = self.client.post(
            f"{API}/centres/{self.site.centre.id}/tickets",
            json={"service": service.code},
            headers=headers or self.site.kiosk,
        )
        assert r.status_code == 201, r.json
        return r.json["ticket_id"]

    def open(self, counter, who, services):
        r = self.client.post(
            f"{API}/staff/counters/{counter}/open",
            json={"services": [s.code for s in services]},
            headers=self.h(who),
        )
        assert r.status_code == 200, r.json

    def call(self, counter, who):
        r = self.client.post(f"{API}/staff/counters/{counter}/call-next", headers=self.h(who))
        assert r.status_code == 200, r.json
        return r.json["ticket_id"]

    def do(self, ticket_id, action, who, **body):
        r = self.client.post(
            f"{API}/staff/tickets/{ticket_id}/{action}", json=body or None, headers=self.h(who)
        )
        assert r.status_code == 200, r.json
        return r.json


def test_stats_of_a_scripted_day_match_a_hand_count(kit, make, client):
    site = kit.site(remote=True)
    one, two = site.counters
    desk = Desk(client, site, make)
    a, b, c = make.citizen(), make.citizen(), make.citizen()
    C, P = site.other, site.passport

    at("08:00")
    t1 = desk.take(C)
    at("08:01")
    t2 = desk.take(C, make.headers(b))  # remote
    at("08:05")
    t3 = client.post(
        f"{API}/staff/centres/{site.centre.id}/urgent-tickets",
        json={"service": P.code, "reason": "Flight tonight"},
        headers=desk.h("supervisor"),
    ).json["ticket_id"]
    desk.open(one, "clerk", [C, P])
    desk.open(two, "clerk2", [C])
    at("08:10")
    booking = kit.booking(site, a, service=C, starts_in=dt.timedelta(minutes=5))
    t4 = client.post(
        f"{API}/centres/{site.centre.id}/check-in", json={"reference": booking.reference}, headers=site.kiosk
    ).json["ticket_id"]
    assert desk.call(one, "clerk") == t3  # urgent first: waited 5
    desk.do(t3, "start", "clerk")
    at("08:12")
    assert desk.call(two, "clerk2") == t4  # due appointment before walk-ins: waited 2
    desk.do(t4, "start", "clerk2")
    at("08:18")
    desk.do(t4, "complete", "clerk2")  # 6 minutes
    at("08:20")
    desk.do(t3, "complete", "clerk")  # 10 minutes
    assert desk.call(one, "clerk") == t1  # waited 20
    desk.do(t1, "start", "clerk")
    at("08:21")
    assert desk.call(two, "clerk2") == t2  # waited 20
    at("08:22")
    t5 = desk.take(P)
    at("08:24")
    desk.do(t1, "complete", "clerk")  # 4 minutes
    at("08:25")
    assert desk.call(one, "clerk") == t5  # waited 3
    at("08:26")
    t5_copy = desk.do(t5, "transfer", "clerk", service=C.code)["ticket_id"]
    desk.do(t2, "no-show", "clerk2")
    at("08:30")
    assert desk.call(two, "clerk2") == t5_copy  # a transfer's wait is not a new visit's wait
    desk.do(t5_copy, "start", "clerk2")
    at("08:38")
    desk.do(t5_copy, "complete", "clerk2")  # 8 minutes
    at("08:40")
    t6 = desk.take(C, make.headers(c))  # remote
    at("08:41")
    assert desk.call(one, "clerk") == t6  # waited 1
    desk.do(t6, "start", "clerk")
    at("08:45")
    desk.do(t6, "complete", "clerk")  # 4 minutes
    for citizen, ticket_id, score in ((a, t4, 5), (c, t6, 2)):
        r = client.post(
            f"{API}/tickets/{ticket_id}/rating", json={"score": score}, headers=make.headers(citizen)
        )
        assert r.status_code == 200, r.json

    at("16:00")
    stats = client.get(
        f"{API}/staff/centres/{site.centre.id}/stats",
        query_string={"date": DAY.isoformat()},
        headers=desk.h("supervisor"),
    ).json
    assert stats["date"] == DAY.isoformat() and stats["timezone"] == "Asia/Amman"
    assert stats["tickets"] == 6
    assert stats["by_source"] == {"walk_in": 2, "appointment": 1, "urgent": 1, "remote": 2}
    assert stats["by_status"] == {"done": 5, "no_show": 1, "transferred": 1}
    # Waits 5, 2, 20, 20, 3, 1: mean 51/6, p90 (nearest rank: the 6th of 6) 20.
    assert stats["wait_minutes"] == {"mean": 8.5, "p90": 20.0, "count": 6}
    # Service times 10, 6, 4, 8, 4.
    assert stats["service_minutes"] == {"mean": 6.4, "count": 5}
    assert stats["no_show_rate"] == round(1 / 6, 3)
    per_counter = {row["number"]: (row["called"], row["done"]) for row in stats["per_counter"]}
    assert per_counter == {1: (4, 3), 2: (3, 2)}
    assert stats["rating"] == {"mean": 3.5, "count": 2}
    # Staff see their centre's figures too; the centre's today is the default date.
    today = client.get(f"{API}/staff/centres/{site.centre.id}/stats", headers=desk.h("clerk")).json
    assert today == stats
    other_day = client.get(
        f"{API}/staff/centres/{site.centre.id}/stats",
        query_string={"date": "2030-05-02"},
        headers=desk.h("clerk"),
    ).json
    assert other_day["tickets"] == 0 and other_day["wait_minutes"]["mean"] is None
    admin = make.account("admin")
    assert (
        client.get(f"{API}/staff/centres/{site.centre.id}/stats", headers=make.headers(admin)).status_code
        == 200
    )


def test_a_visit_is_rated_once_after_it_is_done(kit, make, client):
    site = kit.site(remote=True)
    citizen = make.citizen()
    desk = Desk(client, site, make)
    ticket_id = desk.take(site.other, make.headers(citizen))
    rate = lambda score, comment=None: client.post(  # noqa: E731
        f"{API}/tickets/{ticket_id}/rating",
        json={"score": score, "comment": comment},
        headers=make.headers(citizen),
    )
    assert rate(5).json["error"]["code"] == "rating_not_allowed"
    desk.open(site.counters[0], "clerk", [site.other])
    desk.call(site.counters[0], "clerk")
    desk.do(ticket_id, "complete", "clerk")
    assert rate(6).status_code == 422
    r = rate(4, "Quick and polite")
    assert r.status_code == 200 and r.json["rating"] == 4 and r.json["rating_comment"] == "Quick and polite"
    assert rate(1).status_code == 409
    assert kit.make.fresh(Ticket, ticket_id).rating == 4


def test_close_of_day_expires_leftovers_and_is_idempotent(kit, make, client):
    site = kit.site(weekly_hours=WEEKDAYS_OPEN)  # 08:00-15:00
    desk = Desk(client, site, make)
    at("14:00")
    desk.open(site.counters[0], "clerk", [site.other])
    left = [desk.take(site.other) for _ in range(2)]
    called = desk.call(site.counters[0], "clerk")
    at("14:30")
    served = desk.take(site.other)
    desk.do(called, "complete", "clerk")
    desk.call(site.counters[0], "clerk")
    desk.do(left[1], "start", "clerk")
    at("14:59")
    assert kit.call(tasks.close_day) == 0  # still open
    at("15:10")
    # A kiosk after closing issues nothing (so no ticket waits overnight).
    late = client.post(
        f"{API}/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk
    )
    assert late.status_code == 409 and late.json["error"]["code"] == "centre_closed"
    assert late.json["error"]["details"]["opens_at"] == "2030-05-02T08:00:00+03:00"
    expired_now = kit.call(tasks.close_day)
    assert expired_now == 1
    statuses = kit.call(lambda: dict(db.session.execute(select(Ticket.id, Ticket.status)).all()))
    assert statuses[served] == "expired" and statuses[left[1]] == "serving"
    assert statuses[called] == "done"
    assert kit.call(tasks.close_day) == 0  # idempotent
    clock.shift(dt.timedelta(hours=12))  # next night
    assert kit.call(tasks.close_day) == 1  # the counter left open overnight
    assert kit.call(lambda: db.session.scalar(select(CounterSession.closed_at))) is not None
    assert kit.call(tasks.close_day) == 0
    # Numbering restarts on the new local day, once the centre opens.
    clock.travel_to(dt.datetime(2030, 5, 2, 5, 0, tzinfo=dt.UTC))  # 08:00 in Amman
    assert (
        client.post(
            f"{API}/centres/{site.centre.id}/tickets", json={"service": site.other.code}, headers=site.kiosk
        ).json["number"]
        == "C-001"
    )


def test_unanswered_calls_become_no_shows_after_the_grace(kit, make, client):
    site = kit.site()
    desk = Desk(client, site, make)
    desk.open(site.counters[0], "clerk", [site.other])
    ticket_id = desk.take(site.other)
    desk.call(site.counters[0], "clerk")
    assert kit.call(tasks.expire_unanswered_calls) == 0
    clock.shift(dt.timedelta(minutes=6))
    assert kit.call(tasks.expire_unanswered_calls) == 1
    assert kit.make.fresh(Ticket, ticket_id).status == "no_show"
