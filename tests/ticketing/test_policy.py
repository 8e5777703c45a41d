"""Behaviour of the call-next policy as a counter clerk would see it."""

from __future__ import annotations

import heapq
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ticketing.policy import CallPolicy, Candidate, choose_next, effective_time, order_candidates, rank_key

DAY_START = datetime(2025, 3, 2, 7, 30, tzinfo=UTC)
POLICY = CallPolicy()
SOURCES = ["urgent", "appointment", "walk_in", "remote"]

PROPS = settings(max_examples=120, deadline=None)


def at(minutes: float) -> datetime:
    """A moment `minutes` after the centre opens."""
    return DAY_START + timedelta(minutes=minutes)


def _tier(c: Candidate, now: datetime, policy: CallPolicy) -> int:
    """The four groups of the call order (urgent; walk-ins past the starvation bound; due appointments; the
    rest), computed independently of the implementation."""
    if c.source == "urgent":
        return 0
    if c.source in ("walk_in", "remote") and now - c.issued_at >= policy.starvation_bound:
        return 1
    if c.source == "appointment" and c.appointment_at - policy.appointment_early <= now:
        return 2
    return 3


policies = st.builds(
    CallPolicy,
    vulnerable_bonus=st.integers(0, 30).map(lambda m: timedelta(minutes=m)),
    appointment_early=st.integers(0, 20).map(lambda m: timedelta(minutes=m)),
    starvation_bound=st.integers(5, 90).map(lambda m: timedelta(minutes=m)),
)
# Whole minutes over a short window so equal issue times (ties) are common.
nows = st.integers(0, 480).map(at)


@st.composite
def candidate_lists(draw: st.DrawFn, max_size: int = 25) -> list[Candidate]:
    """Waiting tickets with unique ids, arbitrary sources, ties in issue time likely."""
    ids = draw(st.lists(st.integers(1, 10_000), max_size=max_size, unique=True))
    result = []
    for ticket_id in ids:
        source = draw(st.sampled_from(SOURCES))
        issued = at(draw(st.integers(0, 360)))
        slot = issued + timedelta(minutes=draw(st.integers(-30, 120))) if source == "appointment" else None
        result.append(Candidate(ticket_id, source, issued, draw(st.booleans()), slot))
    return result


# --- basic contract ---------------------------------------------------------------------------------------


def test_nobody_waiting_means_nobody_called() -> None:
    assert choose_next([], now=at(0), policy=POLICY) is None
    assert order_candidates([], now=at(0), policy=POLICY) == []


@PROPS
@given(candidate_lists(), nows, policies, st.randoms(use_true_random=False))
def test_order_is_a_deterministic_permutation_headed_by_choose_next(cands, now, policy, rnd) -> None:
    ordered = order_candidates(cands, now=now, policy=policy)
    assert sorted(c.id for c in ordered) == sorted(c.id for c in cands)
    assert choose_next(cands, now=now, policy=policy) == (ordered[0] if ordered else None)
    shuffled = list(cands)
    rnd.shuffle(shuffled)
    assert order_candidates(shuffled, now=now, policy=policy) == ordered
    assert choose_next(iter(shuffled), now=now, policy=policy) == (ordered[0] if ordered else None)


@PROPS
@given(candidate_lists(), nows, policies)
def test_groups_are_called_in_spec_order(cands, now, policy) -> None:
    ordered = order_candidates(cands, now=now, policy=policy)
    tiers = [_tier(c, now, policy) for c in ordered]
    assert tiers == sorted(tiers)
    starving = [c.issued_at for c in ordered if _tier(c, now, policy) == 1]
    assert starving == sorted(starving), "starving walk-ins are called oldest first"
    due_slots = [c.appointment_at for c in ordered if _tier(c, now, policy) == 2]
    assert due_slots == sorted(due_slots), "due appointments are called by slot time"


# --- urgent -------------------------------------------------------------------------------------------------


@PROPS
@given(candidate_lists(), nows, policies)
def test_urgent_never_waits_behind_anyone(cands, now, policy) -> None:
    urgent = [c for c in cands if c.source == "urgent"]
    chosen = choose_next(cands, now=now, policy=policy)
    if urgent:
        assert chosen is not None
        assert chosen.source == "urgent"
        assert chosen == min(urgent, key=lambda c: (c.issued_at, c.id))


# --- fairness among ordinary tickets ------------------------------------------------------------------------


@PROPS
@given(candidate_lists(), nows, policies)
def test_ordinary_tickets_with_same_vulnerability_are_first_come_first_served(cands, now, policy) -> None:
    ordered = order_candidates(cands, now=now, policy=policy)
    for vulnerable in (False, True):
        ordinary = [
            (c.issued_at, c.id) for c in ordered if _tier(c, now, policy) == 3 and c.vulnerable is vulnerable
        ]
        assert ordinary == sorted(ordinary)


@PROPS
@given(policies, st.integers(0, 100), st.integers(1, 30 * 60))
def test_vulnerable_bonus_moves_visitor_ahead_only_within_the_bonus(policy, minute, margin_s) -> None:
    bonus, margin = policy.vulnerable_bonus, timedelta(seconds=margin_s)
    # Bound raised so neither ticket is starving when the later one arrives: this is about ordinary FIFO.
    floor = bonus + margin + timedelta(minutes=1)
    policy = replace(policy, starvation_bound=max(policy.starvation_bound, floor))
    plain = Candidate(1, "walk_in", at(minute))
    within = Candidate(2, "walk_in", plain.issued_at + bonus - margin, vulnerable=True)
    beyond = Candidate(3, "walk_in", plain.issued_at + bonus + margin, vulnerable=True)
    assert choose_next([plain, within], now=within.issued_at, policy=policy) == within
    assert choose_next([beyond, plain], now=beyond.issued_at, policy=policy) == plain


def test_vulnerable_bonus_examples() -> None:
    plain = Candidate(1, "walk_in", at(0))
    within = Candidate(2, "walk_in", at(14), vulnerable=True)
    beyond = Candidate(3, "walk_in", at(16), vulnerable=True)
    assert effective_time(Candidate(4, "walk_in", at(10), vulnerable=True), POLICY) == at(-5)
    assert choose_next([plain, within], now=at(15), policy=POLICY) == within
    assert choose_next([plain, beyond], now=at(17), policy=POLICY) == plain


def test_early_appointment_check_in_queues_by_issue_time_until_due() -> None:
    before = Candidate(1, "walk_in", at(0))
    early = Candidate(2, "appointment", at(5), appointment_at=at(40))
    after = Candidate(3, "walk_in", at(10))
    queue = [after, early, before]
    assert [c.id for c in order_candidates(queue, now=at(20), policy=POLICY)] == [1, 2, 3]
    # Due from slot start minus appointment_early (10 min): ahead of walk-ins that are not starving...
    assert [c.id for c in order_candidates(queue, now=at(30), policy=POLICY)] == [2, 1, 3]
    # ...but not of one that has waited the starvation bound (45 min).
    assert [c.id for c in order_candidates(queue, now=at(45), policy=POLICY)] == [1, 2, 3]


def test_starving_walk_in_goes_before_a_wave_of_due_appointments() -> None:
    walk_in = Candidate(1, "walk_in", at(0))
    wave = [Candidate(10 + i, "appointment", at(1), appointment_at=at(5)) for i in range(20)]
    assert choose_next([*wave, walk_in], now=at(44), policy=POLICY) != walk_in
    assert choose_next([*wave, walk_in], now=at(45), policy=POLICY) == walk_in
    assert choose_next([*wave, walk_in, Candidate(2, "urgent", at(50))], now=at(50), policy=POLICY).id == 2


# --- starvation bound under load ----------------------------------------------------------------------------


@st.composite
def days(draw: st.DrawFn) -> tuple[int, timedelta, CallPolicy, list[Candidate]]:
    """A day of arrivals for `counters` counters each taking `service` per call.

    Walk-in/remote tickets arrive more than `service` apart, urgents likewise (and at most 3); appointments
    come in bursts of up to 4 per counter booked on the same slot. Totals stay within the day's capacity
    (counters * 8 h / service), but bursts overload the counters for a while — that is what tries to push
    walk-ins past the bound.
    """
    counters = draw(st.integers(3, 5))
    service_s = draw(st.integers(4, 15)) * 60
    policy = draw(policies)
    tickets: list[Candidate] = []

    def spaced(count_max: int) -> list[int]:
        """Arrival offsets in seconds, strictly more than one service time apart."""
        t = draw(st.integers(0, 120 * 60))
        out = []
        for _ in range(draw(st.integers(0, count_max))):
            out.append(t)
            t += service_s + draw(st.integers(1, 60 * 60))
        return out

    for offset in spaced(20):
        source = draw(st.sampled_from(["walk_in", "remote"]))
        tickets.append(Candidate(len(tickets) + 1, source, at(offset / 60), draw(st.booleans())))
    for offset in spaced(3):
        tickets.append(Candidate(len(tickets) + 1, "urgent", at(offset / 60)))
    capacity = counters * 8 * 3600 // service_s  # calls the counters can make in an 8-hour day
    budget = capacity - len(tickets)
    for _ in range(draw(st.integers(0, 8))):
        slot = at(draw(st.integers(0, 60)) * 5)
        size = min(budget, draw(st.integers(1, 4 * counters)))
        budget -= size
        for _ in range(size):
            check_in = slot + timedelta(minutes=draw(st.integers(-30, 15)))
            tickets.append(Candidate(len(tickets) + 1, "appointment", check_in, draw(st.booleans()), slot))
    assert len(tickets) <= capacity, "generator must stay within daily capacity"
    return counters, timedelta(seconds=service_s), policy, tickets


def simulate(
    tickets: list[Candidate], counters: int, service: timedelta, policy: CallPolicy
) -> dict[int, datetime]:
    """Call time of every ticket when each counter calls as soon as it is free and someone is waiting."""
    arrivals = sorted(tickets, key=lambda c: (c.issued_at, c.id))
    free_at = [(DAY_START, k) for k in range(counters)]  # heap of (time the counter is free, counter)
    waiting: list[Candidate] = []
    called: dict[int, datetime] = {}
    nxt = 0
    while nxt < len(arrivals) or waiting:
        now, k = heapq.heappop(free_at)
        while nxt < len(arrivals) and arrivals[nxt].issued_at <= now:
            waiting.append(arrivals[nxt])
            nxt += 1
        if not waiting:  # idle until the next visitor arrives
            heapq.heappush(free_at, (arrivals[nxt].issued_at, k))
            continue
        chosen = choose_next(waiting, now=now, policy=policy)
        waiting.remove(chosen)
        called[chosen.id] = now
        heapq.heappush(free_at, (now + service, k))
    return called


# 30 appointments due at opening keep 3 counters busy for 100 minutes; the walk-in must not wait for all.
MORNING_RUSH = (
    3,
    timedelta(minutes=10),
    CallPolicy(),
    [
        Candidate(1, "walk_in", at(5)),
        *(Candidate(2 + i, "appointment", at(0), appointment_at=at(10)) for i in range(30)),
    ],
)


@settings(max_examples=100, deadline=None)
@given(days())
@example(MORNING_RUSH)
def test_no_walk_in_waits_beyond_the_starvation_bound(day) -> None:
    counters, service, policy, tickets = day
    called = simulate(tickets, counters, service, policy)
    assert called.keys() == {c.id for c in tickets}
    # Sound bound, by induction over the moment tickets enter the "priority" groups (urgent from issue,
    # walk-in/remote from issue + bound). Counters are never idle while someone waits, so while a ticket X
    # waits every counter makes a call within any `service`-long window: >= counters calls in
    # [entry, entry + service]. Only urgents and earlier-starving walk-ins can be called before a starving X,
    # never appointments or fresh walk-ins. Walk-ins are > service apart, so the previous one entered before
    # entry - service and (induction) is already gone; urgents are > service apart, so at most 2 of them
    # can still be waiting or arrive in [entry - service, entry + service]. With >= 3 counters, X is called by
    # entry + service. An urgent X only yields to at most 1 older urgent, so it too is called within service.
    for c in tickets:
        wait = called[c.id] - c.issued_at
        if c.source in ("walk_in", "remote"):
            assert wait <= policy.starvation_bound + service, (c, wait)
        elif c.source == "urgent":
            assert wait <= service, (c, wait)


# --- input validation ---------------------------------------------------------------------------------------


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2025, 3, 2, 9, 0)  # deliberately naive
    ok = Candidate(1, "walk_in", at(0))
    for fn in (order_candidates, choose_next):
        with pytest.raises(ValueError, match="now"):
            fn([ok], now=naive, policy=POLICY)
    with pytest.raises(ValueError, match="now"):
        rank_key(ok, now=naive, policy=POLICY)
    with pytest.raises(ValueError, match="issued_at"):
        Candidate(2, "walk_in", naive)
    with pytest.raises(ValueError, match="appointment_at"):
        Candidate(3, "appointment", at(0), appointment_at=naive)


def test_malformed_candidates_and_policies_are_rejected() -> None:
    with pytest.raises(ValueError, match="source"):
        Candidate(1, "vip", at(0))
    with pytest.raises(ValueError, match="appointment_at"):
        Candidate(2, "appointment", at(0))
    with pytest.raises(ValueError):
        CallPolicy(starvation_bound=timedelta(0))
    with pytest.raises(ValueError):
        CallPolicy(vulnerable_bonus=timedelta(minutes=-1))
