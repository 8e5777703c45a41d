"""Tests for booking.slotgen: local opening hours, closures, DST changes and gaps."""

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking.slotgen import (
    WEEKDAYS,
    SlotTime,
    generate_slot_times,
    local_day_bounds_utc,
    validate_weekly_hours,
)

AMMAN = "Asia/Amman"
WASHINGTON = "America/New_York"
GOV_WEEK = {day: [["08:00", "15:00"]] for day in ("sun", "mon", "tue", "wed", "thu")}
EMBASSY_WEEK = {day: [["09:00", "16:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
SUNDAY = date(2026, 1, 4)
SPRING_FORWARD = date(2026, 3, 8)  # America/New_York: 02:00 EST -> 03:00 EDT
FALL_BACK = date(2026, 11, 1)  # America/New_York: 02:00 EDT -> 01:00 EST


def generate(**overrides):
    kwargs = {
        "weekly_hours": GOV_WEEK,
        "closures": set(),
        "timezone": AMMAN,
        "slot_minutes": 20,
        "first_day": SUNDAY,
        "last_day": SUNDAY,
    }
    return generate_slot_times(**(kwargs | overrides))


def utc(day, hour, minute=0):
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def local_wall(instant, timezone):
    return instant.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def test_amman_sunday_has_21_twenty_minute_slots_from_0800_local():
    assert SUNDAY.weekday() == WEEKDAYS.index("sun")
    slots = generate()
    assert len(slots) == 21
    assert slots[0].start == utc(SUNDAY, 5)
    assert slots[-1].end == utc(SUNDAY, 12)
    assert all(slot.start.tzinfo is UTC and slot.end.tzinfo is UTC for slot in slots)
    assert all(slot.end - slot.start == timedelta(minutes=20) for slot in slots)
    assert all(a.end == b.start for a, b in pairwise(slots))
    assert {slot.local_date for slot in slots} == {SUNDAY}


def test_amman_friday_and_saturday_are_closed():
    friday, saturday = SUNDAY - timedelta(days=2), SUNDAY - timedelta(days=1)
    assert generate(first_day=friday, last_day=saturday) == []


def test_amman_holiday_closure_has_no_slots_but_other_days_do():
    tuesday = SUNDAY + timedelta(days=2)
    slots = generate(closures={tuesday}, last_day=SUNDAY + timedelta(days=4))
    per_day = Counter(slot.local_date for slot in slots)
    assert tuesday not in per_day
    assert per_day == {SUNDAY + timedelta(days=n): 21 for n in (0, 1, 3, 4)}


def test_trailing_partial_slot_is_dropped():
    slots = generate(weekly_hours={"sun": [["08:00", "09:50"]]})
    assert [local_wall(slot.start, AMMAN).time() for slot in slots] == [
        time(8, 0),
        time(8, 20),
        time(8, 40),
        time(9, 0),
        time(9, 20),
    ]
    assert local_wall(slots[-1].end, AMMAN).time() == time(9, 40)


def test_split_day_hours_have_no_slot_during_lunch_break():
    slots = generate(weekly_hours={"sun": [["08:00", "12:00"], ["13:00", "15:00"]]}, slot_minutes=30)
    starts = [local_wall(slot.start, AMMAN).time() for slot in slots]
    assert len(slots) == 8 + 4
    assert time(11, 30) in starts and time(13, 0) in starts
    assert not any(time(12, 0) <= start < time(13, 0) for start in starts)


def test_slot_near_local_midnight_belongs_to_the_local_day():
    slots = generate(weekly_hours={"sun": [["00:00", "02:00"]]}, slot_minutes=60)
    saturday = SUNDAY - timedelta(days=1)
    assert [slot.start for slot in slots] == [utc(saturday, 21), utc(saturday, 22)]
    assert {slot.local_date for slot in slots} == {SUNDAY}
    assert local_day_bounds_utc(SUNDAY, AMMAN) == (utc(saturday, 21), utc(SUNDAY, 21))


@pytest.mark.parametrize(
    ("first_day", "last_day", "before_hour", "after_hour", "change"),
    [
        (date(2026, 10, 29), date(2026, 11, 3), 13, 14, FALL_BACK),
        (date(2026, 3, 5), date(2026, 3, 10), 14, 13, SPRING_FORWARD),
    ],
    ids=["november-dst-ends", "march-dst-starts"],
)
def test_washington_keeps_local_hours_across_dst_change(first_day, last_day, before_hour, after_hour, change):
    slots = generate(
        weekly_hours=EMBASSY_WEEK,
        timezone=WASHINGTON,
        slot_minutes=30,
        first_day=first_day,
        last_day=last_day,
    )
    first_utc_hour = {}
    for slot in slots:
        first_utc_hour.setdefault(slot.local_date, slot.start.hour)
    weekdays = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    weekdays = [day for day in weekdays if day.weekday() < 5]
    assert first_utc_hour == {day: before_hour if day < change else after_hour for day in weekdays}

    assert Counter(slot.local_date for slot in slots) == dict.fromkeys(weekdays, 14)
    for slot in slots:
        start, end = local_wall(slot.start, WASHINGTON), local_wall(slot.end, WASHINGTON)
        assert start.date() == end.date() == slot.local_date
        assert time(9, 0) <= start.time() and end.time() <= time(16, 0)
        assert slot.end - slot.start == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("hours", "slot_minutes", "expected_starts_utc"),
    [
        # 01:00 EST, 01:30 EST (ends at the jump, 03:00 EDT), 03:00 EDT; 02:00 and 02:30 do not exist.
        (["01:00", "03:30"], 30, [(6, 0), (6, 30), (7, 0)]),
        (["01:00", "03:30"], 20, [(6, 0), (6, 20), (6, 40), (7, 0)]),
        # 01:30 EST lasts until 04:00 EDT, so the 03:00 EDT grid slot would overlap it and is skipped.
        (["01:30", "05:00"], 90, [(6, 30)]),
        # 02:15 does not exist; the 45-minute grid resumes at 03:00 EDT rather than shifting to 03:15.
        (["02:15", "04:30"], 45, [(7, 0), (7, 45)]),
        # Only one real hour is open, so a 90-minute slot starting 01:00 would run past the 03:00 close.
        (["01:00", "03:00"], 90, []),
    ],
)
def test_spring_forward_gap_has_no_slot_at_a_nonexistent_time(hours, slot_minutes, expected_starts_utc):
    slots = generate(
        weekly_hours={"sun": [hours]},
        timezone=WASHINGTON,
        slot_minutes=slot_minutes,
        first_day=SPRING_FORWARD,
        last_day=SPRING_FORWARD,
    )
    assert [slot.start for slot in slots] == [utc(SPRING_FORWARD, h, m) for h, m in expected_starts_utc]
    walls = [local_wall(slot.start, WASHINGTON) for slot in slots]
    assert not any(time(2, 0) <= wall.time() < time(3, 0) for wall in walls)
    assert all(
        wall.replace(tzinfo=ZoneInfo(WASHINGTON)).astimezone(UTC) == s.start for wall, s in zip(walls, slots)
    )
    assert all(a.end <= b.start for a, b in pairwise(slots))
    assert all(slot.end - slot.start == timedelta(minutes=slot_minutes) for slot in slots)
    close = datetime.combine(SPRING_FORWARD, time.fromisoformat(hours[1]))
    assert all(local_wall(slot.end, WASHINGTON) <= close for slot in slots)


def test_fall_back_repeated_hour_is_offered_once():
    slots = generate(
        weekly_hours={"sun": [["00:30", "03:00"]]},
        timezone=WASHINGTON,
        slot_minutes=30,
        first_day=FALL_BACK,
        last_day=FALL_BACK,
    )
    # 00:30, 01:00 and 01:30 EDT (first occurrence, fold=0), then 02:00 and 02:30 EST.
    hm = [(4, 30), (5, 0), (5, 30), (7, 0), (7, 30)]
    assert [slot.start for slot in slots] == [utc(FALL_BACK, h, m) for h, m in hm]
    assert local_wall(slots[-1].end, WASHINGTON) == datetime(2026, 11, 1, 3, 0)


@pytest.mark.parametrize(
    ("timezone", "day", "starts_at_local"),
    [("America/Santiago", date(2026, 9, 6), time(1, 0)), ("Asia/Beirut", date(2026, 3, 29), time(1, 0))],
)
def test_day_whose_midnight_does_not_exist_starts_at_the_jump(timezone, day, starts_at_local):
    start, end = local_day_bounds_utc(day, timezone)
    assert local_wall(start, timezone) == datetime.combine(day, starts_at_local)
    assert local_wall(start - timedelta(seconds=1), timezone).date() == day - timedelta(days=1)
    assert end == local_day_bounds_utc(day + timedelta(days=1), timezone)[0]
    assert local_day_bounds_utc(day - timedelta(days=1), timezone)[1] == start
    hours = {WEEKDAYS[day.weekday()]: [["00:00", "02:00"]]}
    slots = generate(weekly_hours=hours, timezone=timezone, slot_minutes=30, first_day=day, last_day=day)
    assert [local_wall(slot.start, timezone).time() for slot in slots] == [time(1, 0), time(1, 30)]


def test_a_day_open_until_24_00_has_slots_up_to_midnight():
    monday = SUNDAY + timedelta(days=1)
    slots = generate_slot_times(
        weekly_hours={"mon": [["00:00", "24:00"]]},
        closures=[],
        timezone="Asia/Amman",
        slot_minutes=20,
        first_day=monday,
        last_day=monday,
    )
    amman = ZoneInfo("Asia/Amman")
    assert len(slots) == 72
    assert slots[0].start.astimezone(amman) == datetime.combine(monday, time(0), tzinfo=amman)
    assert slots[-1].end.astimezone(amman) == datetime.combine(
        monday + timedelta(days=1), time(0), tzinfo=amman
    )
    assert {slot.local_date for slot in slots} == {monday}


def test_validate_weekly_hours_normalises():
    parsed = validate_weekly_hours({"mon": [("13:00", "15:00"), ["08:00", "13:00"]], "fri": []})
    assert list(parsed) == list(WEEKDAYS)
    assert parsed["mon"] == [(time(8), time(13)), (time(13), time(15))]
    assert all(parsed[day] == [] for day in WEEKDAYS if day != "mon")
    assert validate_weekly_hours(parsed) == parsed


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"monday": [["08:00", "12:00"]]}, "unknown weekday"),
        ({"Mon": [["08:00", "12:00"]]}, "unknown weekday"),
        ({"mon": [["8:00", "12:00"]]}, "HH:MM"),
        ({"mon": [["24:00", "24:00"]]}, "HH:MM"),
        ({"mon": [["08:00", "24:01"]]}, "HH:MM"),
        ({"mon": [["08:60", "12:00"]]}, "HH:MM"),
        ({"mon": [["08:00:00", "12:00"]]}, "HH:MM"),
        ({"mon": [["٠٨:٠٠", "12:00"]]}, "HH:MM"),
        ({"mon": [[800, 1200]]}, "HH:MM"),
        ({"mon": [["12:00", "12:00"]]}, "not after"),
        ({"mon": [["15:00", "08:00"]]}, "not after"),
        ({"mon": [["08:00", "12:00"], ["11:30", "15:00"]]}, "overlap"),
        ({"mon": [["08:00", "15:00"], ["09:00", "10:00"]]}, "overlap"),
        ({"mon": [["08:00", "12:00", "13:00"]]}, "pair"),
        ({"mon": ["08:00", "12:00"]}, "pair"),
        ({"mon": "08:00-12:00"}, "list"),
        ([["08:00", "12:00"]], "mapping"),
    ],
)
def test_validate_weekly_hours_rejects_bad_input(hours, message):
    with pytest.raises(ValueError, match=message):
        validate_weekly_hours(hours)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"slot_minutes": 4}, ValueError),
        ({"slot_minutes": 481}, ValueError),
        ({"slot_minutes": 0}, ValueError),
        ({"slot_minutes": 20.0}, TypeError),
        ({"last_day": SUNDAY - timedelta(days=1)}, ValueError),
        ({"timezone": "Amman"}, ValueError),
        ({"timezone": "Asia"}, ValueError),
        ({"timezone": "../etc/passwd"}, ValueError),
        ({"first_day": datetime(2026, 1, 4, tzinfo=UTC)}, TypeError),
        ({"closures": {datetime(2026, 1, 4)}}, TypeError),
        ({"weekly_hours": {"sunday": []}}, ValueError),
    ],
)
def test_generate_rejects_bad_arguments(overrides, error):
    with pytest.raises(error):
        generate(**overrides)


def test_slot_minutes_bounds_are_inclusive():
    assert len(generate(slot_minutes=5)) == 84
    assert len(generate(slot_minutes=480)) == 0
    assert len(generate(weekly_hours={"sun": [["08:00", "16:00"]]}, slot_minutes=480)) == 1


# --- properties --------------------------------------------------------------------------------------------

PROPERTY_ZONES = [
    AMMAN,
    WASHINGTON,
    "UTC",
    "Europe/London",
    "America/Santiago",  # midnight gap and a repeated 23:00 hour
    "America/Havana",  # midnight gap and a repeated midnight hour
    "Australia/Lord_Howe",  # 30-minute DST shift
]
TRANSITION_DAYS = [
    SPRING_FORWARD,
    FALL_BACK,
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 4, 5),
    date(2026, 9, 6),
    date(2026, 10, 4),
]


def hhmm(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def as_intervals(bounds):
    bounds = sorted(bounds)[: len(bounds) // 2 * 2]
    return [[hhmm(a), hhmm(b)] for a, b in zip(bounds[::2], bounds[1::2])]


@st.composite
def weekly_hours(draw):
    # Two day templates shared by the week keep data generation cheap; "missing" omits the key.
    templates = draw(
        st.lists(st.sets(st.integers(0, 24 * 60 - 1), max_size=6).map(as_intervals), min_size=2, max_size=2)
    )
    hours = {}
    for day in WEEKDAYS:
        choice = draw(st.sampled_from([0, 1, "closed", "missing"]))
        if choice != "missing":
            hours[day] = [] if choice == "closed" else templates[choice]
    return hours


@st.composite
def cases(draw, min_span=0, max_span=4):
    first_day = draw(
        st.one_of(
            st.dates(date(2024, 1, 1), date(2030, 12, 31)),
            st.builds(
                lambda d, k: d - timedelta(days=k), st.sampled_from(TRANSITION_DAYS), st.integers(0, 3)
            ),
        )
    )
    span = draw(st.integers(min_span, max_span))
    closures = {first_day + timedelta(days=k) for k in draw(st.sets(st.integers(0, span), max_size=3))}
    return {
        "weekly_hours": draw(weekly_hours()),
        "closures": closures,
        "timezone": draw(st.sampled_from(PROPERTY_ZONES)),
        "slot_minutes": draw(st.one_of(st.integers(5, 480), st.sampled_from([15, 20, 30, 60]))),
        "first_day": first_day,
        "last_day": first_day + timedelta(days=span),
    }


def interval_of(slot, timezone, hours):
    """Return the parsed (open, close) interval containing the slot's local start, or None."""
    start = local_wall(slot.start, timezone)
    for opens, closes in hours[WEEKDAYS[slot.local_date.weekday()]]:
        if datetime.combine(slot.local_date, opens) <= start < datetime.combine(slot.local_date, closes):
            return opens, closes
    return None


@settings(max_examples=100, deadline=None)
@given(cases())
def test_property_every_slot_lies_inside_local_opening_hours(case):
    tz = ZoneInfo(case["timezone"])
    hours = validate_weekly_hours(case["weekly_hours"])
    day_bounds = {}
    for slot in generate_slot_times(**case):
        assert isinstance(slot, SlotTime)
        assert slot.start.tzinfo is UTC and slot.end.tzinfo is UTC
        assert slot.end - slot.start == timedelta(minutes=case["slot_minutes"])
        assert case["first_day"] <= slot.local_date <= case["last_day"]
        assert slot.local_date not in case["closures"]
        assert case["weekly_hours"].get(WEEKDAYS[slot.local_date.weekday()])
        start, end = local_wall(slot.start, case["timezone"]), local_wall(slot.end, case["timezone"])
        assert start.date() == slot.local_date
        # The local start exists: it converts back to the same UTC instant.
        assert start.replace(tzinfo=tz).astimezone(UTC) == slot.start
        interval = interval_of(slot, case["timezone"], hours)
        assert interval is not None
        opens, closes = (datetime.combine(slot.local_date, t) for t in interval)
        assert end <= closes
        assert (start - opens) % timedelta(minutes=case["slot_minutes"]) == timedelta(0)
        if slot.local_date not in day_bounds:
            day_bounds[slot.local_date] = local_day_bounds_utc(slot.local_date, case["timezone"])
        day_start, day_end = day_bounds[slot.local_date]
        assert day_start <= slot.start and slot.end <= day_end


@settings(max_examples=100, deadline=None)
@given(cases())
def test_property_starts_strictly_increase_and_slots_never_overlap(case):
    slots = generate_slot_times(**case)
    starts = [slot.start for slot in slots]
    assert len(set(starts)) == len(starts)
    assert all(a.end <= b.start for a, b in pairwise(slots))
    assert all(a.local_date <= b.local_date for a, b in pairwise(slots))


@settings(max_examples=100, deadline=None)
@given(cases())
def test_property_interval_holds_floor_of_its_length_on_days_without_offset_change(case):
    tz = ZoneInfo(case["timezone"])
    hours = validate_weekly_hours(case["weekly_hours"])
    slots = generate_slot_times(**case)
    counts = Counter((slot.local_date, interval_of(slot, case["timezone"], hours)) for slot in slots)
    day = case["first_day"]
    while day <= case["last_day"]:
        day_start, day_end = local_day_bounds_utc(day, case["timezone"])
        steady = day_end - day_start == timedelta(days=1) and (
            day_start.astimezone(tz).utcoffset()
            == (day_end - timedelta(seconds=1)).astimezone(tz).utcoffset()
        )
        if steady:
            for opens, closes in hours[WEEKDAYS[day.weekday()]]:
                minutes = (datetime.combine(day, closes) - datetime.combine(day, opens)) // timedelta(
                    minutes=1
                )
                expected = 0 if day in case["closures"] else minutes // case["slot_minutes"]
                assert counts[(day, (opens, closes))] == expected
        day += timedelta(days=1)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_property_generation_is_deterministic(case):
    first = generate_slot_times(**case)
    again = generate_slot_times(**case)
    as_list = generate_slot_times(**(case | {"closures": sorted(case["closures"], reverse=True)}))
    assert first == again == as_list


@settings(max_examples=100, deadline=None)
@given(cases(min_span=1, max_span=6), st.data())
def test_property_adjacent_ranges_concatenate_to_the_union(case, data):
    span = (case["last_day"] - case["first_day"]).days
    split = case["first_day"] + timedelta(days=data.draw(st.integers(1, span)))
    head = generate_slot_times(**(case | {"last_day": split - timedelta(days=1)}))
    tail = generate_slot_times(**(case | {"first_day": split}))
    assert head + tail == generate_slot_times(**case)


@settings(max_examples=100, deadline=None)
@given(st.dates(date(2020, 1, 1), date(2035, 12, 31)), st.sampled_from(PROPERTY_ZONES))
def test_property_local_day_bounds_are_exact_and_contiguous(day, timezone):
    start, end = local_day_bounds_utc(day, timezone)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert local_wall(start, timezone).date() == day
    assert local_wall(start - timedelta(seconds=1), timezone).date() == day - timedelta(days=1)
    assert local_wall(end - timedelta(seconds=1), timezone).date() == day
    assert local_day_bounds_utc(day + timedelta(days=1), timezone)[0] == end
    assert timedelta(hours=22) <= end - start <= timedelta(hours=26)
