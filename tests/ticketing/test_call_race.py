"""Twenty counters calling at the same time: every ticket called exactly once, in the policy's order.

PostgreSQL runs the full 2,000 tickets (claims with SELECT … FOR UPDATE SKIP LOCKED, in parallel).
SQLite serialises writers (BEGIN IMMEDIATE), so the same 20 threads go through 400 tickets there to
keep the run short; being serial, SQLite must reproduce the policy's order exactly.
RACE_TICKETS / RACE_COUNTERS override the sizes (e.g. a quick local run).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy import select

from app import clock
from app.accounts.models import Account
from app.catalogue.services import centre_today
from app.extensions import db
from app.security import Principal
from tests.conftest import IS_POSTGRES
from ticketing import counters, ordering, services
from ticketing.models import PRIORITY_BY_SOURCE, Ticket
from ticketing.policy import Candidate, order_candidates

COUNTERS = int(__import__("os").environ.get("RACE_COUNTERS", 20))
TICKETS = int(__import__("os").environ.get("RACE_TICKETS", 2000 if IS_POSTGRES else 400))


def _seed(site, n_tickets: int, seed: int = 7) -> list[Principal]:
    """Clerks for every counter and `n_tickets` waiting tickets of every kind, issued over 30 minutes."""
    rng = random.Random(seed)
    now = clock.now()
    clerks = []
    for i, counter_id in enumerate(site.counters):
        account = Account(
            national_id=f"66{site.counters[0]:04d}{i:04d}",
            role="staff",
            centre_id=site.centre.id,
            full_name=f"Clerk {i}",
            date_of_birth=dt.date(1985, 1, 1),
            phone="+962790000000",
            password_hash="not-used",
            language="en",
            residence_country="JO",
            phone_verified_at=now,
        )
        db.session.add(account)
        db.session.flush()
        clerks.append(Principal(id=account.id, role="staff", centre_id=site.centre.id))
        counters.open_counter(
            counter_id=counter_id, services=[site.other.code, site.passport.code], principal=clerks[-1]
        )
    start = now - dt.timedelta(minutes=30)
    today = centre_today(site.centre)
    for i in range(n_tickets):
        roll = rng.random()
        source = "urgent" if roll < 0.05 else "appointment" if roll < 0.25 else "walk_in"
        service = site.passport if rng.random() < 0.4 else site.other
        issued = start + dt.timedelta(seconds=i * 1800 / n_tickets)
        db.session.add(
            Ticket(
                centre_id=site.centre.id,
                service_code=service.code,
                number=f"{service.ticket_prefix}-{i + 1:03d}",
                seq=i + 1,
                local_date=today,
                source=source,
                priority=PRIORITY_BY_SOURCE[source],
                vulnerable=source == "walk_in" and rng.random() < 0.15,
                status="waiting",
                issued_at=issued,
                # Every appointment is due (its slot started within the last 40 minutes).
                appointment_at=now - dt.timedelta(minutes=rng.randint(0, 40))
                if source == "appointment"
                else None,
                recall_count=0,
            )
        )
    db.session.commit()
    return clerks


def test_twenty_counters_call_every_ticket_exactly_once_in_policy_order(kit, app):
    site = kit.site(counters=COUNTERS)
    clerks = kit.call(_seed, site, TICKETS)
    expected = kit.call(
        lambda: [
            c.id
            for c in order_candidates(
                [
                    Candidate(t.id, t.source, t.issued_at, t.vulnerable, t.appointment_at)
                    for t in db.session.scalars(select(Ticket))
                ],
                now=clock.now(),
                policy=ordering.call_policy(),
            )
        ]
    )
    assert len(expected) == TICKETS
    barrier = threading.Barrier(COUNTERS)

    def work(index: int) -> list[tuple[int, float, float]]:
        """One counter calling until nobody waits: (ticket id, call began, call returned) per call."""
        counter_id, clerk = site.counters[index], clerks[index]
        calls = []
        with app.app_context():
            try:
                barrier.wait()
                while True:
                    began = time.monotonic()
                    ticket = services.call_next_ticket(counter_id=counter_id, principal=clerk)
                    if ticket is None:
                        return calls
                    calls.append((ticket.id, began, time.monotonic()))
                    services.complete_ticket(ticket_id=ticket.id, principal=clerk)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=COUNTERS) as pool:
        per_counter = list(pool.map(work, range(COUNTERS)))

    calls = {ticket_id: (began, returned) for log in per_counter for ticket_id, began, returned in log}
    assert sum(len(log) for log in per_counter) == len(calls) == TICKETS, "a ticket was called twice or lost"
    assert sum(1 for log in per_counter if log) > 1, "the counters did not work in parallel"
    rows = kit.call(
        lambda: db.session.execute(
            select(Ticket.id, Ticket.status, Ticket.called_at, Ticket.counter_id)
        ).all()
    )
    assert {status for _, status, _, _ in rows} == {"done"}
    assert all(counter_id in site.counters for _, _, _, counter_id in rows)
    if not IS_POSTGRES:
        # Serialised claims follow the policy exactly.
        assert [ticket_id for ticket_id, *_ in sorted(rows, key=lambda r: (r[2], r[0]))] == expected
    # The policy, observed from outside: a ticket is only passed over while another counter is taking it.
    # So every ticket the policy puts before X had its call begin before X's call returned.
    latest_start_so_far = float("-inf")
    for ticket_id in expected:
        began, returned = calls[ticket_id]
        assert latest_start_so_far < returned, f"ticket {ticket_id} was called before a better-placed one"
        latest_start_so_far = max(latest_start_so_far, began)
    sources = kit.call(lambda: dict(db.session.execute(select(Ticket.id, Ticket.source)).all()))
    urgent_began = max(calls[t][0] for t, s in sources.items() if s == "urgent")
    assert all(calls[t][1] > urgent_began for t, s in sources.items() if s != "urgent")


def test_a_stale_head_is_never_taken_past_what_it_knows(kit, ctx):
    """If other counters used up the head of a stream while this one was slow, it reads the queue again
    rather than call a ticket the unread part of that stream would beat."""
    site = kit.site()
    now = clock.now()
    for minutes, vulnerable in ((0, False), (1, False), (2, False), (30, True)):
        services.issue_walk_in_ticket(
            centre_id=site.centre.id, service_code=site.other.code, vulnerable=vulnerable
        )
        db.session.execute(
            sa.update(Ticket)
            .where(Ticket.id == db.session.scalar(sa.select(sa.func.max(Ticket.id))))
            .values(issued_at=now - dt.timedelta(minutes=40 - minutes))
        )
    db.session.commit()
    head = ordering.head_of_queue(site.centre.id, [site.other.code], now=now, per_stream=2)
    policy = ordering.call_policy()
    safe = [row.number for row in head.rows if head.safe(row, now, policy)]
    # The vulnerable visitor (30 minutes later, 15 minutes of bonus) ranks after the unread third walk-in.
    assert [row.number for row in head.rows] == ["C-001", "C-002", "C-004"]
    assert safe == ["C-001", "C-002"]
    full = ordering.head_of_queue(site.centre.id, [site.other.code], now=now)
    assert full.horizon is None and [row.number for row in full.rows] == ["C-001", "C-002", "C-003", "C-004"]


def test_a_counter_serving_many_services_calls_every_ticket_in_policy_order(kit, app):
    """Nine services: call-next reads only a few tickets per stream, yet what its head holds as exact is a
    prefix of the policy's order of every waiting ticket, and the counter calls them all in that order."""
    site = kit.site(counters=1)
    extra = [kit.make.service(code=f"extra.{site.centre.id}.{i}", ticket_prefix="X") for i in range(7)]
    for service in extra:
        kit.make.offering(site.centre, service)
    codes = [site.other.code, site.passport.code, *(s.code for s in extra)]
    assert ordering._per_stream(len(codes)) < ordering.HEAD_PER_STREAM
    rng = random.Random(11)
    now = clock.now()

    def seed() -> Principal:
        clerk = Principal(id=site.clerk.id, role="staff", centre_id=site.centre.id)
        counters.open_counter(counter_id=site.counters[0], services=codes, principal=clerk)
        today = centre_today(site.centre)
        for i in range(300):
            source = rng.choice(("walk_in", "walk_in", "walk_in", "appointment", "urgent", "remote"))
            db.session.add(
                Ticket(
                    centre_id=site.centre.id,
                    # Skewed: most tickets for two services, so their streams run deep.
                    service_code=rng.choice(codes[:2] * 4 + codes),
                    number=f"T-{i:03d}",
                    seq=i + 1,
                    local_date=today,
                    source=source,
                    priority=PRIORITY_BY_SOURCE[source],
                    vulnerable=rng.random() < 0.2,
                    status="waiting",
                    # Minutes away from the starvation bound (45) and from being due (10 before the slot),
                    # so the order cannot change while the test runs.
                    issued_at=now
                    - dt.timedelta(seconds=rng.choice((rng.randint(0, 2400), rng.randint(3000, 5400)))),
                    appointment_at=now
                    + dt.timedelta(minutes=rng.choice((rng.randint(-60, 0), rng.randint(20, 60))))
                    if source == "appointment"
                    else None,
                    recall_count=0,
                )
            )
        db.session.commit()
        return clerk

    clerk = kit.call(seed)

    def in_policy_order() -> list[int]:
        waiting = db.session.scalars(select(Ticket).where(Ticket.status == "waiting"))
        candidates = [Candidate(t.id, t.source, t.issued_at, t.vulnerable, t.appointment_at) for t in waiting]
        return [c.id for c in order_candidates(candidates, now=clock.now(), policy=ordering.call_policy())]

    def call_all() -> tuple[list[int], list[int]]:
        expected, called = in_policy_order(), []
        while True:
            # What the head knows is exact is a prefix of the policy's order of every waiting ticket.
            head = ordering.head_of_queue(site.centre.id, codes, now=clock.now())
            exact, order = [row.id for row in head.exact()], in_policy_order()
            assert exact == order[: len(exact)]
            assert len(exact) >= min(ordering._per_stream(len(codes)), len(order))
            ticket = services.call_next_ticket(counter_id=site.counters[0], principal=clerk)
            if ticket is None:
                return called, expected
            called.append(ticket.id)
            services.complete_ticket(ticket_id=ticket.id, principal=clerk)

    called, expected = kit.call(call_all)
    assert called == expected and len(called) == 300


def test_clicks_at_one_counter_at_the_same_instant_leave_it_one_called_ticket(kit, app):
    """Twenty call-next clicks at once at the same counter: each puts the previous call back first, so the
    counter ends with one called ticket, everyone else still waits, and the screens' counts agree."""
    site = kit.site(counters=1)
    clerk = Principal(id=site.clerk.id, role="staff", centre_id=site.centre.id)

    def seed() -> None:
        counters.open_counter(counter_id=site.counters[0], services=[site.other.code], principal=clerk)
        for _ in range(30):
            services.issue_walk_in_ticket(centre_id=site.centre.id, service_code=site.other.code)

    kit.call(seed)
    results = kit.race(
        lambda _: services.call_next_ticket(counter_id=site.counters[0], principal=clerk),
        range(20),
        workers=20,
    )
    assert all(result is not None and not isinstance(result, Exception) for result in results)
    statuses = kit.call(lambda: [t.status for t in db.session.scalars(select(Ticket))])
    assert statuses.count("called") == 1 and statuses.count("waiting") == 29
    snapshot = kit.call(lambda: services.queue_snapshot(centre_id=site.centre.id))
    assert snapshot["waiting"] == {site.other.code: 29}


VISIT_TICKETS = int(__import__("os").environ.get("RACE_VISIT_TICKETS", 500 if IS_POSTGRES else 120))


def _seed_visits(site, third, n_tickets: int, seed: int = 13) -> tuple[list[Principal], dict[int, list[str]]]:
    """Clerks serving different sets of three services, and tickets of two or three services each."""
    rng = random.Random(seed)
    now = clock.now()
    codes = [site.other.code, site.passport.code, third.code]
    # Every service has counters, but not every counter serves every service: a requeued ticket must wait for
    # a counter of its next service.
    served_by = [codes, codes[:2], codes[1:], [codes[0], codes[2]]]
    clerks, serves = [], {}
    for i, counter_id in enumerate(site.counters):
        account = Account(
            national_id=f"67{site.counters[0]:04d}{i:04d}",
            role="staff",
            centre_id=site.centre.id,
            full_name=f"Clerk {i}",
            date_of_birth=dt.date(1985, 1, 1),
            phone="+962790000000",
            password_hash="not-used",
            language="en",
            residence_country="JO",
            phone_verified_at=now,
        )
        db.session.add(account)
        db.session.flush()
        clerks.append(Principal(id=account.id, role="staff", centre_id=site.centre.id))
        serves[counter_id] = served_by[i % len(served_by)]
        counters.open_counter(counter_id=counter_id, services=serves[counter_id], principal=clerks[-1])
    start = now - dt.timedelta(minutes=30)
    today = centre_today(site.centre)
    for i in range(n_tickets):
        visit = rng.sample(codes, rng.choice((2, 2, 3)))
        roll = rng.random()
        source = "urgent" if roll < 0.05 else "appointment" if roll < 0.25 else "walk_in"
        db.session.add(
            Ticket(
                centre_id=site.centre.id,
                service_code=visit[0],
                services=visit,
                services_left=len(visit) - 1,
                number=f"V-{i + 1:03d}",
                seq=i + 1,
                local_date=today,
                source=source,
                priority=PRIORITY_BY_SOURCE[source],
                vulnerable=source == "walk_in" and rng.random() < 0.15,
                status="waiting",
                issued_at=start + dt.timedelta(seconds=i * 1800 / n_tickets),
                appointment_at=now - dt.timedelta(minutes=rng.randint(0, 40))
                if source == "appointment"
                else None,
                recall_count=0,
            )
        )
    db.session.commit()
    return clerks, serves


def test_counters_calling_tickets_of_several_services_serve_each_service_once(kit, app):
    """Counters call and complete tickets of two or three services at once: every (ticket, service) is
    served exactly once, in the ticket's order, by a counter serving that service, and a ticket is never
    with two counters at once (each service is recorded as served by the counter that called it, and each
    completion finishes the service its counter called)."""
    from ticketing.models import TicketService

    site = kit.site(counters=COUNTERS)
    third = kit.make.service(code=f"third.race{site.centre.id}", ticket_prefix="T")
    kit.make.offering(site.centre, third)
    clerks, serves = kit.call(_seed_visits, site, third, VISIT_TICKETS)
    visits = kit.call(lambda: dict(db.session.execute(select(Ticket.id, Ticket.services)).all()))
    barrier = threading.Barrier(COUNTERS)

    def open_tickets() -> int:
        try:
            return db.session.scalar(select(sa.func.count()).where(Ticket.status != "done"))
        finally:
            db.session.rollback()  # hand the connection back while this counter waits

    def work(index: int) -> list[tuple[int, str, int]]:
        """One counter calling until every ticket is done: (ticket id, service, counter) per call."""
        counter_id, clerk = site.counters[index], clerks[index]
        calls = []
        with app.app_context():
            try:
                barrier.wait()
                idle_since = time.monotonic()
                while True:
                    ticket = services.call_next_ticket(counter_id=counter_id, principal=clerk)
                    if ticket is None:
                        # A ticket may still come back into one of this counter's services.
                        if not open_tickets() or time.monotonic() - idle_since > 60:
                            return calls
                        time.sleep(0.005)
                        continue
                    idle_since = time.monotonic()
                    assert ticket.service_code in serves[counter_id], "called from a stream it does not serve"
                    calls.append((ticket.id, ticket.service_code, counter_id))
                    done = services.complete_ticket(ticket_id=ticket.id, principal=clerk)
                    finished = done.service_code
                    if done.status == "waiting":  # requeued: the service before its current one was done
                        finished = done.services[done.services.index(done.service_code) - 1]
                    assert finished == ticket.service_code, "completed another service than it called"
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=COUNTERS) as pool:
        per_counter = list(pool.map(work, range(COUNTERS)))

    by_counter = {(ticket_id, code): counter_id for log in per_counter for ticket_id, code, counter_id in log}
    calls = [(ticket_id, code) for log in per_counter for ticket_id, code, _ in log]
    expected = {(ticket_id, code) for ticket_id, codes in visits.items() for code in codes}
    duplicates = len(calls) - len(set(calls))
    assert duplicates == 0, "a ticket was called twice for one service"
    assert set(calls) == expected, "a service of a ticket was lost"
    assert sum(1 for log in per_counter if log) > 1, "the counters did not work in parallel"
    rows = kit.call(
        lambda: db.session.execute(
            select(Ticket.id, Ticket.status, Ticket.service_code, Ticket.counter_id)
        ).all()
    )
    assert {status for _, status, *_ in rows} == {"done"}
    on_the_way = kit.call(
        lambda: db.session.execute(
            select(TicketService.ticket_id, TicketService.service_code, TicketService.counter_id).order_by(
                TicketService.id
            )
        ).all()
    )
    served: dict[int, list[str]] = {}
    for ticket_id, code, counter_id in [*on_the_way, *((t, c, k) for t, _, c, k in rows)]:
        served.setdefault(ticket_id, []).append(code)
        assert by_counter[ticket_id, code] == counter_id, f"ticket {ticket_id} was with two counters at once"
    assert served == visits, "services served out of the tickets' order"
