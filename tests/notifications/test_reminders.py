"""Reminders 24 h and 2 h before a visit, in the centre's zone, each exactly once (shifted clock)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from booking.models import Booking
from booking.tasks import reminder_due, send_reminders
from notifications.models import Notification

UTC = dt.UTC


def _reminders(make):
    return make.call(
        lambda: [
            (n.kind, n.dedupe_key, n.data.get("reference"))
            for n in db.session.scalars(select(Notification).order_by(Notification.id))
        ]
    )


def _at(make, instant: dt.datetime) -> int:
    clock.travel_to(instant)
    return make.call(send_reminders)


def test_reminders_fire_24h_and_2h_before_in_amman(make, visit):
    centre = make.centre(timezone="Asia/Amman")
    offering = make.offering(centre, make.service(code="passport.renew", name_en="Passport renewal"))
    citizen = make.citizen(language="en")
    start = dt.datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # 10:00 in Amman
    booking_id = visit(citizen, offering, start)

    assert _at(make, dt.datetime(2026, 12, 1, 6, 58, tzinfo=UTC)) == 0  # 24 h 2 min before
    assert _at(make, dt.datetime(2026, 12, 1, 7, 1, tzinfo=UTC)) == 1
    assert _at(make, dt.datetime(2026, 12, 1, 7, 6, tzinfo=UTC)) == 0  # the next run: not again
    assert _at(make, dt.datetime(2026, 12, 2, 4, 58, tzinfo=UTC)) == 0
    assert _at(make, dt.datetime(2026, 12, 2, 5, 1, tzinfo=UTC)) == 1  # 2 h before
    assert _at(make, dt.datetime(2026, 12, 2, 6, 30, tzinfo=UTC)) == 0
    assert _at(make, dt.datetime(2026, 12, 2, 7, 1, tzinfo=UTC)) == 0  # started: nothing

    reference = make.fresh(Booking, booking_id).reference
    assert _reminders(make) == [
        ("reminder_24h", f"reminder24:{booking_id}", reference),
        ("reminder_2h", f"reminder2:{booking_id}", reference),
    ]
    bodies = make.call(lambda: db.session.scalars(select(Notification.body).order_by(Notification.id)).all())
    assert "2026-12-02 10:00" in bodies[0]  # local time of the centre
    assert "starts at 10:00" in bodies[1]


def test_the_24h_reminder_follows_the_centres_wall_clock_across_daylight_saving(make, visit):
    # Washington: DST ends on 1 November 2026, so "the day before at 10:00" is 25 h before the visit.
    centre = make.centre(timezone="America/New_York", kind="embassy")
    offering = make.offering(centre, make.service())
    citizen = make.citizen()
    start = dt.datetime(2026, 11, 1, 15, 0, tzinfo=UTC)  # 10:00 EST
    visit(citizen, offering, start)

    assert _at(make, dt.datetime(2026, 10, 31, 13, 59, tzinfo=UTC)) == 0  # 09:59 EDT the day before
    assert _at(make, dt.datetime(2026, 10, 31, 14, 0, 30, tzinfo=UTC)) == 1  # 10:00 EDT the day before
    assert [k for k, _, _ in _reminders(make)] == ["reminder_24h"]


def test_reminders_missed_while_the_scheduler_was_down(make, visit):
    """A missed 24 h reminder still goes until the 2 h window opens; then only the 2 h one goes."""
    offering = make.offering(make.centre(), make.service())
    citizen = make.citizen()
    late_start = dt.datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    later_start = dt.datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    late = visit(citizen, offering, late_start)
    later = visit(make.citizen(), offering, later_start)

    # The scheduler comes back 3 h before the first visit and 4 h before the second.
    assert _at(make, late_start - dt.timedelta(hours=3)) == 2
    # ...and then is down again until 1 h before the first.
    assert _at(make, late_start - dt.timedelta(hours=1)) == 2
    assert sorted(key for _, key, _ in _reminders(make)) == sorted(
        [f"reminder24:{late}", f"reminder24:{later}", f"reminder2:{late}", f"reminder2:{later}"]
    )


def test_only_the_2h_reminder_when_first_seen_inside_2h(make, visit):
    offering = make.offering(make.centre(), make.service())
    start = dt.datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    booking_id = visit(make.citizen(), offering, start)

    assert _at(make, start - dt.timedelta(minutes=90)) == 1
    assert [key for _, key, _ in _reminders(make)] == [f"reminder2:{booking_id}"]


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (dt.timedelta(hours=24, minutes=1), None),
        (dt.timedelta(hours=24), "reminder_24h"),
        (dt.timedelta(hours=2, seconds=1), "reminder_24h"),
        (dt.timedelta(hours=2), "reminder_2h"),
        (dt.timedelta(seconds=1), "reminder_2h"),
        (dt.timedelta(0), None),
    ],
)
def test_reminder_windows(before, expected):
    start = dt.datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    assert reminder_due(slot_start=start, timezone="Asia/Amman", now=start - before) == expected
