"""Counters: a clerk opens one for services and closes it, its state on the console, and the lock on
its session that serialises two clicks at the same counter."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.catalogue.models import Counter, Offering
from app.dialect import for_update
from app.errors import NotFound
from app.extensions import db
from app.security import Principal, require_centre

from .errors import CounterInUse, CounterNotOpen, ServiceNotServed
from .live import waiting_counts
from .models import CounterSession, Ticket
from .ordering import literal_in, waiting_in_order


def open_sessions(*, centre_id: str) -> list[CounterSession]:
    """The counters open right now at a centre."""
    return list(
        db.session.scalars(
            select(CounterSession)
            .join(Counter, Counter.id == CounterSession.counter_id)
            .where(Counter.centre_id == centre_id, CounterSession.closed_at.is_(None))
        )
    )


def counter_payload(counter: Counter | None) -> dict[str, Any] | None:
    """A counter as answers and screens show it."""
    if counter is None:
        return None
    return {
        "id": counter.id,
        "number": counter.number,
        "name_ar": counter.name_ar,
        "name_en": counter.name_en,
    }


def _counter_for(counter_id: int, principal: Principal) -> Counter:
    counter = db.session.get(Counter, counter_id)
    if counter is None:
        raise NotFound()
    require_centre(principal, counter.centre_id)
    return counter


def _open_session_of(counter_id: int, *, lock: bool = False) -> CounterSession | None:
    query = select(CounterSession).where(
        CounterSession.counter_id == counter_id, CounterSession.closed_at.is_(None)
    )
    return db.session.scalar(for_update(query) if lock else query)


def open_counter(*, counter_id: int, services: Sequence[str], principal: Principal) -> CounterSession:
    """A clerk opens a counter for services; it replaces whatever session was left open there or by them."""
    counter = _counter_for(counter_id, principal)
    wanted = list(dict.fromkeys(services))
    offered = set(
        db.session.scalars(
            select(Offering.service_code).where(
                Offering.centre_id == counter.centre_id,
                Offering.service_code.in_(wanted),
                Offering.active.is_(True),
            )
        )
    )
    missing = [code for code in wanted if code not in offered]
    if missing or not wanted:
        raise ServiceNotServed(details={"services": missing})
    now = clock.now()
    current = _open_session_of(counter_id, lock=True)
    if current is not None and current.account_id == principal.id:
        current.services = wanted
        db.session.commit()
        return current
    db.session.execute(
        update(CounterSession)
        .where(
            CounterSession.closed_at.is_(None),
            (CounterSession.counter_id == counter_id) | (CounterSession.account_id == principal.id),
        )
        .values(closed_at=now)
    )
    session = CounterSession(counter_id=counter_id, account_id=principal.id, services=wanted, opened_at=now)
    db.session.add(session)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise CounterInUse() from None
    return session


def close_counter(*, counter_id: int, principal: Principal) -> CounterSession | None:
    """Close a counter (its current ticket, if any, stays with the counter until finished)."""
    _counter_for(counter_id, principal)
    session = _open_session_of(counter_id, lock=True)
    if session is None:
        raise CounterNotOpen()
    session.closed_at = clock.now()
    db.session.commit()
    return session


def counter_state(*, counter_id: int, principal: Principal) -> dict[str, Any]:
    """A counter's open session, its current ticket and the waiting list it calls from."""
    counter = _counter_for(counter_id, principal)
    session = _open_session_of(counter_id)
    current = _current_ticket(counter_id)
    services = session.services if session else []
    waiting = waiting_in_order(centre_id=counter.centre_id, services=services, limit=50) if services else []
    counts = waiting_counts(centre_id=counter.centre_id)
    return {
        "counter": counter_payload(counter),
        "centre_id": counter.centre_id,
        "open": session is not None,
        "services": services,
        "current": current,
        "waiting": [
            {"ticket_id": w.id, "number": w.number, "service": w.service_code, "source": w.source}
            for w in waiting
        ],
        "waiting_total": sum(counts.get(code, 0) for code in services),
    }


def _current_ticket(counter_id: int) -> Ticket | None:
    query = (
        select(Ticket)
        .where(Ticket.counter_id == counter_id, literal_in(Ticket.status, "called", "serving"))
        .order_by(Ticket.called_at.desc())
        .limit(1)
    )
    return db.session.scalar(query)


@functools.cache
def _desk_statement():
    """The counter's centre and its open session's services, the session row locked (built once)."""
    counter, session = Counter.__table__, CounterSession.__table__
    return (
        select(counter.c.centre_id, session.c.services)
        .join_from(counter, session, (session.c.counter_id == counter.c.id) & session.c.closed_at.is_(None))
        .where(counter.c.id == bindparam("desk"))
        .with_for_update(of=session)
    )


def lock_open_counter(counter_id: int, principal: Principal) -> tuple[str, list[str]]:
    """The centre and services of an open counter the principal may work at, its session locked: this
    serialises two clicks at the same counter while other counters go on in parallel."""
    row = db.session.execute(_desk_statement(), {"desk": counter_id}).first()
    try:
        if row is None:
            _counter_for(counter_id, principal)  # 404 and 403 before "not open"
            raise CounterNotOpen()
        require_centre(principal, row.centre_id)
    except Exception:
        db.session.rollback()
        raise
    return row.centre_id, list(row.services or [])
