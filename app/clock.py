"""The one source of "now", so tests can move time without patching the standard library."""

from __future__ import annotations

import datetime as dt

_offset = dt.timedelta(0)


def now() -> dt.datetime:
    """The current instant, aware, in UTC (shifted in tests)."""
    return dt.datetime.now(dt.UTC) + _offset


def shift(delta: dt.timedelta) -> None:
    """Move the clock by `delta` (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    """Put the clock back to real time."""
    global _offset
    _offset = dt.timedelta(0)


def travel_to(instant: dt.datetime) -> None:
    """Set the clock so that `now()` is about `instant` (tests only)."""
    global _offset
    _offset = instant - dt.datetime.now(dt.UTC)
