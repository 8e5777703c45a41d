"""Pure call-next selection policy for service-centre ticket queues."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

URGENT = "urgent"
APPOINTMENT = "appointment"
WALK_IN = "walk_in"
REMOTE = "remote"
SOURCES = frozenset({URGENT, APPOINTMENT, WALK_IN, REMOTE})
# Only tickets without a fixed slot can starve; appointments are protected by becoming due instead.
STARVABLE_SOURCES = frozenset({WALK_IN, REMOTE})

TIER_URGENT = 0
TIER_STARVING = 1
TIER_DUE_APPOINTMENT = 2
TIER_REST = 3

RankKey = tuple[int, datetime, datetime, int]


def _require_aware(value: datetime, name: str) -> None:
    """Raise ValueError if `value` is a naive datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A waiting ticket as seen by the call-next policy."""

    id: int
    source: str  # "urgent" | "appointment" | "walk_in" | "remote"
    issued_at: datetime  # aware UTC; for transferred tickets the ORIGINAL issue time
    vulnerable: bool = False
    appointment_at: datetime | None = None  # slot start for appointment tickets

    def __post_init__(self) -> None:
        """Reject malformed candidates early: they indicate a bug in the loading layer."""
        if self.source not in SOURCES:
            raise ValueError(f"unknown ticket source {self.source!r} (ticket {self.id})")
        _require_aware(self.issued_at, f"issued_at of ticket {self.id}")
        if self.appointment_at is not None:
            _require_aware(self.appointment_at, f"appointment_at of ticket {self.id}")
        elif self.source == APPOINTMENT:
            raise ValueError(f"appointment ticket {self.id} has no appointment_at")


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """Tunable knobs of the call-next ordering."""

    vulnerable_bonus: timedelta = timedelta(
        minutes=15
    )  # vulnerable visitors treated as if issued this much earlier
    appointment_early: timedelta = timedelta(minutes=10)  # an appointment is "due" from slot start minus this
    starvation_bound: timedelta = timedelta(
        minutes=45
    )  # walk-in/remote waiting this long goes before due appointments

    def __post_init__(self) -> None:
        """Reject settings that would make the ordering meaningless."""
        if self.vulnerable_bonus < timedelta(0):
            raise ValueError("vulnerable_bonus must not be negative")
        if self.appointment_early < timedelta(0):
            raise ValueError("appointment_early must not be negative")
        if self.starvation_bound <= timedelta(0):
            raise ValueError("starvation_bound must be positive")


def effective_time(c: Candidate, policy: CallPolicy) -> datetime:
    """Issue time used for FIFO ordering: vulnerable visitors count as issued `vulnerable_bonus` earlier."""
    return c.issued_at - policy.vulnerable_bonus if c.vulnerable else c.issued_at


def is_starving(c: Candidate, *, now: datetime, policy: CallPolicy) -> bool:
    """Whether a walk-in/remote ticket has waited at least the starvation bound."""
    return c.source in STARVABLE_SOURCES and now - c.issued_at >= policy.starvation_bound


def is_due(c: Candidate, *, now: datetime, policy: CallPolicy) -> bool:
    """Whether an appointment ticket has reached its slot start minus the early window."""
    return (
        c.source == APPOINTMENT
        and c.appointment_at is not None
        and c.appointment_at - policy.appointment_early <= now
    )


def rank_key(c: Candidate, *, now: datetime, policy: CallPolicy) -> RankKey:
    """Sort key of a candidate at `now`; smaller is called first, ties go to issued_at then id."""
    _require_aware(now, "now")
    if c.source == URGENT:
        return (TIER_URGENT, c.issued_at, c.issued_at, c.id)
    if is_starving(c, now=now, policy=policy):
        # Plain issue order (no vulnerable bonus) among starving tickets: this is the order in which they
        # crossed the bound, which is what keeps each one's extra wait bounded.
        return (TIER_STARVING, c.issued_at, c.issued_at, c.id)
    if c.appointment_at is not None and is_due(c, now=now, policy=policy):
        return (TIER_DUE_APPOINTMENT, c.appointment_at, c.issued_at, c.id)
    # Deliberate: an appointment holder who checked in before their slot is due gets no privilege and
    # no penalty — they queue by issue time like a walk-in. Holding them back would let a visitor who
    # came early wait longer than one who walked in without booking.
    return (TIER_REST, effective_time(c, policy), c.issued_at, c.id)


def order_candidates(
    candidates: Iterable[Candidate], *, now: datetime, policy: CallPolicy
) -> list[Candidate]:
    """All candidates in call order (first element is called next)."""
    _require_aware(now, "now")
    return sorted(candidates, key=lambda c: rank_key(c, now=now, policy=policy))


def choose_next(candidates: Iterable[Candidate], *, now: datetime, policy: CallPolicy) -> Candidate | None:
    """The candidate to call next, or None if nobody is waiting.

    Call-next itself ranks the heads of the ordering streams with `rank_key` (`ordering.py`); this is the
    policy's rule stated on its own, and tests/ticketing/test_policy.py, the policy's specification, checks
    it against `order_candidates` and simulated days.
    """
    _require_aware(now, "now")
    # min() instead of order_candidates()[0]: same result (keys are a total order, both keep the first of
    # equal keys), in O(n).
    return min(candidates, key=lambda c: rank_key(c, now=now, policy=policy), default=None)
