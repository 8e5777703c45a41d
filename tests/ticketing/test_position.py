"""A waiting ticket's place, counted in the database (`ordering.ahead_of`), is its place in the policy's call
order (`policy.order_candidates`), ties and tier boundaries included, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from app import clock
from app.extensions import db
from ticketing.models import PRIORITY_BY_SOURCE, Ticket
from ticketing.ordering import ahead_of, call_policy
from ticketing.policy import Candidate, order_candidates
from ticketing.services import centre_today

# Offsets in whole minutes make ties of issue time, of slot start, and of a vulnerable visitor's bonus with
# another's issue time common; a few carry microseconds, as real issue times do.
_ticket = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["urgent", "appointment", "walk_in", "remote"]),
        "vulnerable": st.booleans(),
        "issued_min": st.integers(min_value=0, max_value=90),
        "issued_us": st.sampled_from([0, 0, 0, 1, 500_000]),
        "slot_min": st.integers(min_value=-30, max_value=40),
        "party": st.integers(min_value=1, max_value=3),
    }
)


def _write_queue(site, tickets: list[dict], now: dt.datetime) -> list[Ticket]:
    db.session.execute(delete(Ticket).where(Ticket.centre_id == site.centre.id))
    today = centre_today(site.centre)
    rows = []
    for i, spec in enumerate(tickets):
        source = spec["source"]
        row = Ticket(
            centre_id=site.centre.id,
            service_code=site.passport.code,
            number=f"P-{i + 1:03d}",
            seq=i + 1,
            local_date=today,
            source=source,
            priority=PRIORITY_BY_SOURCE[source],
            vulnerable=spec["vulnerable"],
            status="waiting",
            issued_at=now - dt.timedelta(minutes=spec["issued_min"], microseconds=spec["issued_us"]),
            appointment_at=now + dt.timedelta(minutes=spec["slot_min"]) if source == "appointment" else None,
            recall_count=0,
            party_size=spec["party"],
        )
        db.session.add(row)
        rows.append(row)
    # Another service's and a called ticket of this service never count.
    db.session.add(
        Ticket(
            centre_id=site.centre.id,
            service_code=site.other.code,
            number="C-001",
            seq=1,
            local_date=today,
            source="urgent",
            priority=PRIORITY_BY_SOURCE["urgent"],
            vulnerable=False,
            status="waiting",
            issued_at=now - dt.timedelta(hours=3),
            recall_count=0,
        )
    )
    db.session.add(
        Ticket(
            centre_id=site.centre.id,
            service_code=site.passport.code,
            number="P-999",
            seq=999,
            local_date=today,
            source="urgent",
            priority=PRIORITY_BY_SOURCE["urgent"],
            vulnerable=False,
            status="called",
            issued_at=now - dt.timedelta(hours=3),
            recall_count=0,
        )
    )
    db.session.commit()
    return rows


def _places(site, tickets: list[dict]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    now = clock.now().replace(microsecond=0)
    rows = _write_queue(site, tickets, now)
    policy = call_policy()
    order = order_candidates(
        [Candidate(r.id, r.source, r.issued_at, r.vulnerable, r.appointment_at) for r in rows],
        now=now,
        policy=policy,
    )
    party = {r.id: r.party_size for r in rows}
    expected, counted = [], []
    for row in rows:
        place = next(i for i, c in enumerate(order) if c.id == row.id)
        expected.append((place, sum(party[c.id] for c in order[:place])))
        counted.append(ahead_of(row, now=now))
    return expected, counted


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tickets=st.lists(_ticket, min_size=1, max_size=20))
def test_the_counted_place_is_the_place_in_call_order(kit, tickets) -> None:
    site = _site(kit)
    expected, counted = kit.call(_places, site, tickets)
    assert counted == expected


def test_tier_boundaries_are_where_the_policy_puts_them(kit) -> None:
    """Exactly at the starvation bound, exactly due, and a vulnerable bonus tying another's issue time."""
    policy = kit.call(call_policy)
    starving = int(policy.starvation_bound.total_seconds() // 60)
    early = int(policy.appointment_early.total_seconds() // 60)
    bonus = int(policy.vulnerable_bonus.total_seconds() // 60)
    base = {"vulnerable": False, "issued_us": 0, "slot_min": 0, "party": 1}
    tickets = [
        {**base, "source": "walk_in", "issued_min": starving},  # starving at exactly the bound
        {**base, "source": "walk_in", "issued_min": starving - 1},
        {**base, "source": "appointment", "issued_min": 1, "slot_min": early},  # due at exactly now
        {**base, "source": "appointment", "issued_min": 2, "slot_min": early + 1},  # not due yet
        {**base, "source": "remote", "issued_min": 5, "vulnerable": True},
        {**base, "source": "walk_in", "issued_min": 5 + bonus},  # ties the vulnerable one's effective time
        {**base, "source": "urgent", "issued_min": 0, "party": 3},
    ]
    site = _site(kit)
    expected, counted = kit.call(_places, site, tickets)
    # Urgent; then the starving walk-in; the due appointment; then the rest by effective time: the walk-in
    # of 44 minutes, the walk-in tying the vulnerable visitor's effective time (issued earlier, so first),
    # the vulnerable one, and the appointment not due yet (queued by its issue time).
    assert [place for place, _ in counted] == [1, 3, 2, 6, 5, 4, 0]
    assert counted == expected
    assert [people for _, people in counted] == [3, 5, 4, 8, 7, 6, 0]


_SITES: dict[int, object] = {}


def _site(kit):
    """One centre per app (examples of one test share it; each example rewrites its queue)."""
    key = id(kit.app)
    if key not in _SITES:
        _SITES.clear()
        _SITES[key] = kit.site(counters=1)
    return _SITES[key]
