"""Instants as a centre's people read them: ISO 8601 with the centre's local offset."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo


@functools.lru_cache(maxsize=64)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone of that name (memoised)."""
    return zoneinfo.ZoneInfo(name)


@functools.lru_cache(maxsize=32768)
def local_iso(instant: dt.datetime | None, timezone: str) -> str | None:
    """An instant as ISO 8601 with the zone's offset; None stays None (memoised: slot times recur)."""
    if instant is None:
        return None
    return instant.astimezone(zone(timezone)).isoformat()
