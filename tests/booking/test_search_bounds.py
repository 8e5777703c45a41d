"""Slot searches are bounded (a day past the horizon is `outside_horizon`, long answers are cut at a day
with `X-Next-From`), and refusals say their facts (dates, windows) in the citizen's language."""

import datetime as dt

from app import clock
from app.extensions import db
from booking import availability
from booking.errors import CheckInWindow, NotEligible
from booking.models import BookingSuspension
from tests.booking.queries import search


def test_a_search_past_the_horizon_is_outside_horizon_with_the_last_day(client, kit):
    offering = kit.offering()
    kit.slot(offering, hours_ahead=48)
    beyond = (clock.now() + dt.timedelta(days=45)).date().isoformat()
    r = search(client, offering, headers={"Accept-Language": "en"}, **{"from": beyond})
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "outside_horizon" and error["details"]["reason"] == "horizon"
    latest = dt.datetime.fromisoformat(error["details"]["latest"])
    assert latest.date() == (clock.now() + dt.timedelta(days=30)).astimezone(latest.tzinfo).date()
    assert str(latest.day) in error["message"] and str(latest.year) in error["message"]
    expatriate = kit.headers_for(kit.citizen_id(residence_country="US"))
    assert search(client, offering, expatriate, **{"from": beyond}).status_code == 200
    assert search(client, offering, **{"from": clock.now().date().isoformat()}).status_code == 200


def test_a_long_answer_is_cut_at_a_day_and_names_the_next(client, kit, monkeypatch):
    monkeypatch.setattr(availability, "SLOTS_PER_ANSWER", 3)
    offering = kit.offering()
    start = (clock.now() + dt.timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
    days = [start + dt.timedelta(days=d, hours=h) for d in range(3) for h in (0, 1)]
    for when in days:
        kit.slot(offering, start=when)
    first = search(client, offering)
    assert [s["start"][:10] for s in first.get_json()] == [days[0].date().isoformat()] * 2
    next_from = first.headers["X-Next-From"]
    assert next_from == days[2].date().isoformat()
    rest = search(client, offering, **{"from": next_from})
    assert len(rest.get_json()) == 2 and rest.headers["X-Next-From"] == days[4].date().isoformat()
    last = search(client, offering, **{"from": rest.headers["X-Next-From"]})
    assert len(last.get_json()) == 2 and "X-Next-From" not in last.headers


def test_suspension_message_says_until_when(client, kit):
    offering = kit.offering()
    slot = kit.slot(offering)
    citizen = kit.citizen_id()
    until = clock.now() + dt.timedelta(days=7)

    def suspend():
        db.session.add(BookingSuspension(account_id=citizen, kind="no_show", scope="all", until=until))
        db.session.commit()

    kit.call(suspend)
    for language, month in (("en", until.strftime("%B")), ("ar", None)):
        headers = kit.headers_for(citizen, **{"Accept-Language": language})
        r = client.post("/api/v1/bookings", json={"slot_id": slot.id}, headers=headers)
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "booking_suspended"
        message = r.get_json()["error"]["message"]
        assert "date given" not in message and "التاريخ المحدد" not in message
        if month:
            assert month in message and str(until.year) in message


def test_check_in_window_and_eligibility_messages_carry_the_facts(rctx):
    window = CheckInWindow(
        details={"window_start": "2026-12-01T09:30:00+03:00", "window_end": "2026-12-01T10:15:00+03:00"}
    ).render_message()
    assert "9:30" in window and "10:15" in window and "December 1, 2026" in window
    assert "details" not in window
    renew = NotEligible(details={"reason": "passport_not_expiring", "renewal_opens_on": "2027-03-05"})
    assert "March 5, 2027" in renew.render_message()
