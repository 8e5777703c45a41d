"""A centre's opening state at an instant: open until when, or closed until when (its own zone)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.catalogue.models import Centre, Closure
from app.catalogue.services import is_open, opening_state

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


_hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30, 59]))
_pair = st.one_of(
    st.tuples(_hhmm, _hhmm).map(sorted).map(list), st.just(["00:00", "24:00"]), st.just(["20:00", "24:00"])
)
_week = st.dictionaries(
    st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), st.lists(_pair, max_size=2)
)


@settings(max_examples=200, deadline=None)
@given(
    hours=_week,
    zone=st.sampled_from(["Asia/Amman", "Europe/Berlin", "America/New_York", "UTC"]),
    closed=st.lists(st.integers(-2, 3), max_size=2),
    minutes=st.integers(0, 4 * 24 * 60),
)
def test_is_open_says_what_the_opening_state_says(hours, zone, closed, minutes):
    """The ticket path's quick check (today's and yesterday's intervals) against the fortnight's merge, over
    random weeks, zones with and without DST (the March and November changes are inside the range), and
    closure days."""
    start = (
        dt.datetime(2026, 3, 27, tzinfo=dt.UTC) if minutes % 2 else dt.datetime(2026, 10, 30, tzinfo=dt.UTC)
    )
    at = start + dt.timedelta(minutes=minutes)
    centre = Centre(id="c", timezone=zone, weekly_hours=hours)
    local_day = at.astimezone(ZoneInfo(zone)).date()
    centre.closures = [Closure(date=local_day + dt.timedelta(days=d)) for d in set(closed)]
    assert is_open(centre, at) == opening_state(centre, at).open
