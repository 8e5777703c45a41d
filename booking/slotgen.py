"""Pure generator of bookable slot times from a centre's weekly opening hours (no DB, no clock reads)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_SLOT_MINUTES = 5
MAX_SLOT_MINUTES = 480

# ASCII digits only: `\d` would also accept Arabic-Indic digits, which int() silently converts.
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# A closing time of "24:00" (open until midnight) is held as the last instant of the day.
END_OF_DAY = time.max


@dataclass(frozen=True, slots=True)
class SlotTime:
    """One bookable slot: a UTC instant range plus the centre-local date it belongs to."""

    start: datetime
    end: datetime
    local_date: date


def validate_weekly_hours(
    hours: Mapping[str, Sequence[Sequence[str | time]]],
) -> dict[str, list[tuple[time, time]]]:
    """Parse weekly hours into sorted (open, close) pairs for all seven weekdays, raising ValueError."""
    if not isinstance(hours, Mapping):
        raise ValueError(
            f"weekly hours must be a mapping of weekday -> intervals, got {type(hours).__name__}"
        )
    unknown = sorted(repr(key) for key in hours if key not in WEEKDAYS)
    if unknown:
        raise ValueError(
            f"unknown weekday key(s) {', '.join(unknown)}; expected some of {', '.join(WEEKDAYS)}"
        )
    parsed: dict[str, list[tuple[time, time]]] = {}
    for day in WEEKDAYS:
        raw = hours.get(day, ())
        if isinstance(raw, str) or not isinstance(raw, Sequence):
            raise ValueError(f"{day}: expected a list of [open, close] intervals, got {raw!r}")
        intervals = []
        for index, interval in enumerate(raw):
            where = f"{day}[{index}]"
            if isinstance(interval, str) or not isinstance(interval, Sequence) or len(interval) != 2:
                raise ValueError(f"{where}: expected an [open, close] pair, got {interval!r}")
            opens, closes = _parse_hhmm(interval[0], where), _parse_hhmm(interval[1], where, closing=True)
            if closes <= opens:
                raise ValueError(
                    f"{where}: closes at {closes:%H:%M}, which is not after it opens at {opens:%H:%M}"
                )
            intervals.append((opens, closes))
        intervals.sort()
        for (open_a, close_a), (open_b, close_b) in pairwise(intervals):
            if open_b < close_a:
                first, second = f"{open_a:%H:%M}-{close_a:%H:%M}", f"{open_b:%H:%M}-{close_b:%H:%M}"
                raise ValueError(f"{day}: intervals {first} and {second} overlap")
        parsed[day] = intervals
    return parsed


def generate_slot_times(
    *,
    weekly_hours: Mapping[str, Sequence[Sequence[str | time]]],
    closures: Collection[date],
    timezone: str,
    slot_minutes: int,
    first_day: date,
    last_day: date,
) -> list[SlotTime]:
    """Return the slots of the inclusive local date range first_day..last_day, in UTC and sorted by start."""
    hours = validate_weekly_hours(weekly_hours)
    tz = _zone(timezone)
    if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, int):
        raise TypeError(f"slot_minutes must be an int, got {slot_minutes!r}")
    if not MIN_SLOT_MINUTES <= slot_minutes <= MAX_SLOT_MINUTES:
        raise ValueError(f"slot_minutes must be {MIN_SLOT_MINUTES}..{MAX_SLOT_MINUTES}, got {slot_minutes}")
    _require_date(first_day, "first_day")
    _require_date(last_day, "last_day")
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}")
    closed = set()
    for closure in closures:
        _require_date(closure, "closure")
        closed.add(closure)

    step = timedelta(minutes=slot_minutes)
    slots: list[SlotTime] = []
    for offset in range((last_day - first_day).days + 1):
        day = first_day + timedelta(days=offset)
        if day not in closed:
            slots.extend(_day_slots(day, hours[WEEKDAYS[day.weekday()]], tz, step))
    return slots


def local_day_bounds_utc(day: date, timezone: str) -> tuple[datetime, datetime]:
    """Return the UTC instants at which local `day` starts and the following local day starts."""
    _require_date(day, "day")
    tz = _zone(timezone)
    return _local_day_start(day, tz), _local_day_start(day + timedelta(days=1), tz)


def _day_slots(
    day: date, intervals: list[tuple[time, time]], tz: ZoneInfo, step: timedelta
) -> Iterator[SlotTime]:
    # Slots walk a local wall-clock grid from each opening time, so they keep the advertised local times
    # whatever the UTC offset. A slot always lasts `step` of real time, so one running through a
    # spring-forward jump ends later on the wall clock: it is dropped if that passes the close, and a grid
    # slot it overlaps is skipped.
    free_from = datetime.min.replace(tzinfo=UTC)
    for opens, closes in intervals:
        close_wall = (
            datetime.combine(day + timedelta(days=1), time())
            if closes == END_OF_DAY
            else datetime.combine(day, closes)
        )
        wall = datetime.combine(day, opens)
        while wall + step <= close_wall:
            start = _existing_utc(wall, tz)
            if start is not None:
                end = start + step
                if free_from <= start and _wall(end, tz) <= close_wall:
                    yield SlotTime(start=start, end=end, local_date=day)
                    free_from = end
            wall += step


def _existing_utc(wall: datetime, tz: ZoneInfo) -> datetime | None:
    # fold=0 (the default) resolves an ambiguous fall-back time to its first occurrence, so the repeated hour
    # is offered once. A spring-forward gap time does not round-trip to itself, and has no slot.
    start = wall.replace(tzinfo=tz).astimezone(UTC)
    return start if _wall(start, tz) == wall else None


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _local_day_start(day: date, tz: ZoneInfo) -> datetime:
    # A nonexistent midnight (America/Santiago, Asia/Beirut) is where a spring-forward jump starts; fold=0
    # reads it with the pre-jump offset, which is the jump instant itself. No tzdata zone jumps over midnight
    # from earlier in the evening (checked for every zone, 1970-2037), so a day never starts mid-gap.
    return datetime.combine(day, time()).replace(tzinfo=tz).astimezone(UTC)


def _parse_hhmm(value: object, where: str, *, closing: bool = False) -> time:
    if closing and value == "24:00":
        return END_OF_DAY
    if isinstance(value, time) and value.tzinfo is None and value.second == value.microsecond == 0:
        return value
    if isinstance(value, str) and (match := _HHMM.fullmatch(value)):
        return time(int(match[1]), int(match[2]))
    raise ValueError(f"{where}: expected a time as 'HH:MM' between 00:00 and 23:59, got {value!r}")


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str):
        raise ValueError(f"timezone must be an IANA name such as 'Asia/Amman', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown IANA timezone {name!r}") from exc


def _require_date(value: object, name: str) -> None:
    # datetime subclasses date but never equals one, so it would silently miss closures and range checks.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime.date, got {value!r}")
