"""A centre's opening state at an instant: open until when, or closed until when (its own zone)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from app.catalogue.models import Centre, Closure
from app.catalogue.services import opening_state

AMMAN = ZoneInfo("Asia/Amman")
WEEKDAYS = {d: [["08:00", "15:00"]] for d in ("sun", "mon", "tue", "wed", "thu")}


def _centre(hours, closures=()) -> Centre:
    centre = Centre(id="c", timezone="Asia/Amman", weekly_hours=hours)
    centre.closures = [Closure(date=day) for day in closures]
    return centre


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=AMMAN)


def test_open_in_hours_closed_outside_with_the_next_opening():
    thursday = dt.date(2026, 12, 3)
    sunday = thursday + dt.timedelta(days=3)
    centre = _centre(WEEKDAYS)
    during = opening_state(centre, _at(thursday, 9))
    assert during.open and during.closes_at == _at(thursday, 15)
    late = opening_state(centre, _at(thursday, 23, 37))
    assert not late.open and late.opens_at == _at(sunday, 8)  # Friday and Saturday are closed
    early = opening_state(centre, _at(thursday, 7, 59))
    assert not early.open and early.opens_at == _at(thursday, 8)
    assert not opening_state(centre, _at(thursday, 15)).open  # closing time is closed


def test_a_closure_day_is_closed_and_around_the_clock_is_always_open():
    monday = dt.date(2026, 11, 30)
    closed = opening_state(_centre(WEEKDAYS, closures=[monday]), _at(monday, 10))
    assert not closed.open and closed.opens_at == _at(monday + dt.timedelta(days=1), 8)
    always = _centre({d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    for hour in (0, 8, 23):
        assert opening_state(always, _at(monday, hour)).open
    assert opening_state(always, _at(monday, 23, 59)).open
    assert not opening_state(_centre({}), _at(monday, 10)).open
    assert opening_state(_centre({}), _at(monday, 10)).opens_at is None
