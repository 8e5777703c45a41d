"""The lottery of a draw, in the open: a committed seed, an order anyone can recompute, seats in that order.

The seed is 32 random bytes from `secrets`; its SHA-256 (`seed_commitment`) is public from creation and the
seed itself once drawn. Entrants are ordered by HMAC-SHA256(key = seed bytes, message = entry_token),
ascending hex; in that order each takes the earliest free seat of the draw's days matching its
`part_of_day`. Pure functions: no database, no clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from booking.release_models import AFTERNOON_FROM_HOUR


def commitment(seed_hex: str) -> str:
    """The published commitment to a seed: hex SHA-256 of the seed's bytes."""
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def entry_key(seed_hex: str, entry_token: str) -> str:
    """An entry's place in the draw: hex HMAC-SHA256(key = seed bytes, message = entry_token)."""
    return hmac.new(bytes.fromhex(seed_hex), entry_token.encode(), hashlib.sha256).hexdigest()


def draw_order(seed_hex: str, tokens: Iterable[str]) -> list[str]:
    """Entry tokens in draw order (ascending HMAC hex)."""
    return sorted(tokens, key=lambda token: entry_key(seed_hex, token))


def part_of_day(start: dt.datetime, timezone: str) -> str:
    """`morning` before 12:00 centre-local, else `afternoon`."""
    return (
        "morning" if start.astimezone(zoneinfo.ZoneInfo(timezone)).hour < AFTERNOON_FROM_HOUR else "afternoon"
    )


class SeatPool:
    """Free seats by slot in (start, slot id) order; takes the earliest one matching a part of the day."""

    def __init__(self, slots: Sequence[dict[str, Any]]) -> None:
        self.slots = list(slots)
        self.left = [int(s["seats"]) for s in self.slots]
        self.cursor = {"any": 0, "morning": 0, "afternoon": 0}

    def take(self, part: str) -> int | None:
        index = self.cursor[part]
        while index < len(self.slots) and (
            self.left[index] == 0 or (part != "any" and self.slots[index]["part_of_day"] != part)
        ):
            index += 1
        self.cursor[part] = index
        if index == len(self.slots):
            return None
        self.left[index] -= 1
        return int(self.slots[index]["slot_id"])

    def empty(self) -> bool:
        return not any(self.left)


def allocate(
    *, seed_hex: str, entries: Sequence[dict[str, str]], seats: Sequence[dict[str, Any]], excluded: set[str]
) -> list[tuple[str, int]]:
    """The allocations [(entry_token, slot_id)]: entries in draw order, each taking the earliest seat it fits.

    `entries` are {entry_token, part_of_day}; `seats` are the published snapshot; `excluded` tokens are
    skipped. This is exactly the recomputation a reader of the published result does.
    """
    parts = {e["entry_token"]: e["part_of_day"] for e in entries}
    pool = SeatPool(list(seats))
    out: list[tuple[str, int]] = []
    for token in draw_order(seed_hex, parts):
        if pool.empty():
            break
        if token in excluded:
            continue
        slot_id = pool.take(parts[token])
        if slot_id is not None:
            out.append((token, slot_id))
    return out
