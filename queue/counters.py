"""Counters: a clerk opens one for services, pauses, resumes and closes it (one counter per clerk, one
clerk per counter; a supervisor may take a counter over), its state on the console and on the floor view,
and the lock on its session that serialises two clicks at the same counter."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.audit import record_audit
from app.catalogue.models import Centre, Counter, Offering
from app.catalogue.services import get_centre
from app.dialect import on_postgres
from app.errors import NotFound
from app.extensions import db
from app.security import Principal, require_centre

from .errors import (
    AlreadyAtCounter,
    CounterInUse,
    CounterNotOpen,
    CounterPaused,
    CounterTaken,
    ServiceNotServed,
    TakeoverNotAllowed,
    TicketInService,
)
from .live import waiting_counts
from .models import CounterSession, Ticket
from .ordering import literal_in, waiting_in_order

# Who may take over a counter another clerk holds (`force`), or close it for them.
SUPERVISING_ROLES = ("supervisor", "admin")


def open_sessions(*, centre_id: str, working: bool = False) -> list[CounterSession]:
    """The counters open right now at a centre (`working`: not paused, those wait estimates count on)."""
    query = (
        select(CounterSession)
        .join(Counter, Counter.id == CounterSession.counter_id)
        .where(Counter.centre_id == centre_id, CounterSession.closed_at.is_(None))
    )
    if working:
        query = query.where(CounterSession.paused_at.is_(None))
    return list(db.session.scalars(query))


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


def _local_iso(instant: dt.datetime | None, timezone: str) -> str | None:
    return instant.astimezone(zoneinfo.ZoneInfo(timezone)).isoformat() if instant else None


def _counter_for(counter_id: int, principal: Principal, *, lock: bool = False) -> Counter:
    query = select(Counter).where(Counter.id == counter_id)
    if lock and on_postgres():
        # FOR NO KEY UPDATE: serialises opening the same counter, without blocking tickets that point to it.
        query = query.with_for_update(key_share=True)
    counter = db.session.scalar(query)
    if counter is None:
        db.session.rollback()
        raise NotFound()
    try:
        require_centre(principal, counter.centre_id)
    except Exception:
        db.session.rollback()
        raise
    return counter


def _open_session_of(counter_id: int, *, lock: bool = False) -> CounterSession | None:
    query = select(CounterSession).where(
        CounterSession.counter_id == counter_id, CounterSession.closed_at.is_(None)
    )
    if lock and on_postgres():
        query = query.with_for_update()
    return db.session.scalar(query)


def lock_session_of(counter_id: int) -> None:
    """Lock a counter's open session, if any (PostgreSQL; SQLite runs one writer at a time)."""
    _open_session_of(counter_id, lock=True)


def _clerk_session(account_id: int) -> CounterSession | None:
    return db.session.scalar(
        select(CounterSession).where(
            CounterSession.account_id == account_id, CounterSession.closed_at.is_(None)
        )
    )


def _holder_details(session: CounterSession, timezone: str) -> dict[str, Any]:
    """Who holds a counter and since when, as a refusal's `details` say it."""
    name = db.session.scalar(select(Account.full_name).where(Account.id == session.account_id))
    return {
        "counter_id": session.counter_id,
        "held_by": name or str(session.account_id),
        "held_by_account_id": session.account_id,
        "since": _local_iso(session.opened_at, timezone),
    }


def _other_counter_details(session: CounterSession, timezone: str) -> dict[str, Any]:
    counter = db.session.get(Counter, session.counter_id)
    return {
        "counter_id": session.counter_id,
        "number": counter.number if counter else None,
        "since": _local_iso(session.opened_at, timezone),
    }


def _refuse(error: Exception) -> None:
    db.session.rollback()
    raise error


def open_counter(
    *, counter_id: int, services: Sequence[str], principal: Principal, force: bool = False
) -> CounterSession:
    """A clerk opens a counter for services (re-opening their own changes its services).

    A counter another clerk holds is refused (`counter_taken`, who and since when) unless a supervisor
    takes it over with `force` (audited); a clerk already at another counter is refused
    (`already_at_counter`). The database holds both rules (one open session per counter and per clerk).
    """
    counter = _counter_for(counter_id, principal, lock=True)
    timezone = counter.centre.timezone
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
        _refuse(ServiceNotServed(details={"services": missing}))
    now = clock.now()
    current = _open_session_of(counter_id, lock=True)
    if current is not None and current.account_id == principal.id:
        current.services = wanted
        db.session.commit()
        return current
    mine = _clerk_session(principal.id)
    if mine is not None:
        _refuse(AlreadyAtCounter(details=_other_counter_details(mine, timezone)))
    if current is not None:
        if not force:
            _refuse(CounterTaken(details=_holder_details(current, timezone)))
        if principal.role not in SUPERVISING_ROLES:
            _refuse(TakeoverNotAllowed(details=_holder_details(current, timezone)))
        record_audit(
            actor_id=principal.id,
            actor_role=principal.role,
            action="counter.taken_over",
            subject_type="counter",
            subject_id=counter_id,
            centre_id=counter.centre_id,
            details={
                "from_account_id": current.account_id,
                "from_session_id": current.id,
                "held_since": current.opened_at.isoformat(),
                "services": wanted,
            },
        )
        current.closed_at = now
        db.session.flush()
    session = CounterSession(counter_id=counter_id, account_id=principal.id, services=wanted, opened_at=now)
    db.session.add(session)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        # Another open at the same instant won (SQLite, or the same clerk at two counters at once).
        held = _open_session_of(counter_id)
        if held is not None and held.account_id != principal.id:
            raise CounterTaken(details=_holder_details(held, timezone)) from None
        mine = _clerk_session(principal.id)
        if mine is not None and mine.counter_id != counter_id:
            raise AlreadyAtCounter(details=_other_counter_details(mine, timezone)) from None
        raise CounterInUse() from None
    return session


def _held_session(counter_id: int, principal: Principal) -> tuple[Counter, CounterSession]:
    """The counter and its open session, locked; a clerk may change only the counter they hold."""
    counter = _counter_for(counter_id, principal)
    session = _open_session_of(counter_id, lock=True)
    if session is None:
        _refuse(CounterNotOpen())
    if session.account_id != principal.id and principal.role not in SUPERVISING_ROLES:
        _refuse(CounterTaken(details=_holder_details(session, counter.centre.timezone)))
    return counter, session


def close_counter(*, counter_id: int, principal: Principal) -> CounterSession:
    """Close a counter (its current ticket, if any, stays with the counter until finished); a supervisor may
    close the counter of a clerk who left it open (audited)."""
    counter, session = _held_session(counter_id, principal)
    if session.account_id != principal.id:
        record_audit(
            actor_id=principal.id,
            actor_role=principal.role,
            action="counter.closed_for_clerk",
            subject_type="counter",
            subject_id=counter_id,
            centre_id=counter.centre_id,
            details={"account_id": session.account_id, "session_id": session.id},
        )
    session.closed_at = clock.now()
    session.paused_at = session.pause_reason = None
    db.session.commit()
    return session


def pause_counter(*, counter_id: int, reason: str, principal: Principal) -> CounterSession:
    """The clerk steps away: the counter calls nobody and counts for no wait estimate until resumed."""
    _, session = _held_session(counter_id, principal)
    if session.paused_at is None:
        session.paused_at = clock.now()
    session.pause_reason = reason
    db.session.commit()
    return session


def resume_counter(*, counter_id: int, principal: Principal) -> CounterSession:
    """Back at the counter: it calls again (resuming a counter that is not paused changes nothing)."""
    _, session = _held_session(counter_id, principal)
    session.paused_at = session.pause_reason = None
    db.session.commit()
    return session


def session_payload(session: CounterSession | None) -> dict[str, Any]:
    """The pause fields of an open session, as the counter's state and the floor view show them."""
    paused_at = session.paused_at if session else None
    return {
        "paused": paused_at is not None,
        "paused_at": paused_at,
        "pause_reason": session.pause_reason if session else None,
    }


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
        "timezone": counter.centre.timezone,
        "open": session is not None,
        "state": _state_of(session, current),
        "account_id": session.account_id if session else None,
        "since": session.opened_at if session else None,
        **session_payload(session),
        "services": services,
        "current": current,
        "waiting": [
            {"ticket_id": w.id, "number": w.number, "service": w.service_code, "source": w.source}
            for w in waiting
        ],
        "waiting_total": sum(counts.get(code, 0) for code in services),
    }


def _state_of(session: CounterSession | None, current: Ticket | None) -> str:
    """closed, paused, serving (a ticket called or being served there) or open (free to call)."""
    if session is None:
        return "closed"
    if session.paused_at is not None:
        return "paused"
    return "serving" if current is not None else "open"


def floor_view(*, centre_id: str, principal: Principal) -> dict[str, Any]:
    """Every counter of a centre with its state, clerk, current ticket and pause, for consoles and the
    supervisor's dashboard."""
    centre = get_centre(centre_id)
    require_centre(principal, centre_id)
    sessions = {s.counter_id: s for s in open_sessions(centre_id=centre_id)}
    names = dict(
        db.session.execute(
            select(Account.id, Account.full_name).where(
                Account.id.in_([s.account_id for s in sessions.values()])
            )
        ).all()
    )
    current: dict[int, Ticket] = {}
    for ticket in db.session.scalars(
        select(Ticket)
        .join(Counter, Counter.id == Ticket.counter_id)
        .where(Counter.centre_id == centre_id, literal_in(Ticket.status, "called", "serving"))
        .order_by(Ticket.called_at)
    ):
        current[ticket.counter_id] = ticket  # the latest call wins
    entries = []
    for counter in centre.counters:
        session, ticket = sessions.get(counter.id), current.get(counter.id)
        entries.append(
            {
                "timezone": centre.timezone,
                "counter": counter_payload(counter),
                "id": counter.id,
                "number": counter.number,
                "name_ar": counter.name_ar,
                "name_en": counter.name_en,
                "state": _state_of(session, ticket),
                "open": session is not None,
                "account_id": session.account_id if session else None,
                "clerk_name": names.get(session.account_id) if session else None,
                "services": session.services if session else [],
                "since": session.opened_at if session else None,
                **session_payload(session),
                "current": None
                if ticket is None
                else {
                    "timezone": centre.timezone,
                    "ticket_id": ticket.id,
                    "number": ticket.number,
                    "service": ticket.service_code,
                    "status": ticket.status,
                    "called_at": ticket.called_at,
                    "started_at": ticket.started_at,
                },
            }
        )
    summary = {state: sum(1 for e in entries if e["state"] == state) for state in COUNTER_STATES}
    return {
        "centre_id": centre.id,
        "timezone": centre.timezone,
        "counters": entries,
        "summary": summary,
        "at": clock.now(),
    }


COUNTER_STATES = ("closed", "open", "paused", "serving")


def counter_figures(*, centre_id: str) -> dict[str, int]:
    """How many counters are open (working or not), paused and serving right now."""
    sessions = open_sessions(centre_id=centre_id)
    busy = set(
        db.session.scalars(
            select(Ticket.counter_id)
            .join(Counter, Counter.id == Ticket.counter_id)
            .where(Counter.centre_id == centre_id, literal_in(Ticket.status, "called", "serving"))
        )
    )
    paused = sum(1 for s in sessions if s.paused_at is not None)
    serving = sum(1 for s in sessions if s.paused_at is None and s.counter_id in busy)
    return {"open": len(sessions), "paused": paused, "serving": serving}


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
    """The counter's centre and its open session (services, holder, pause), the session row locked, and
    whether a ticket is being served there (built once)."""
    counter, session, tickets = Counter.__table__, CounterSession.__table__, Ticket.__table__
    serving = exists().where(tickets.c.counter_id == counter.c.id, literal_in(tickets.c.status, "serving"))
    return (
        select(
            counter.c.centre_id,
            session.c.services,
            session.c.account_id,
            session.c.paused_at,
            serving.label("serving"),
        )
        .join_from(counter, session, (session.c.counter_id == counter.c.id) & session.c.closed_at.is_(None))
        .where(counter.c.id == bindparam("desk"))
        .with_for_update(of=session)
    )


def lock_open_counter(counter_id: int, principal: Principal) -> tuple[str, list[str]]:
    """The centre and services of an open counter the principal holds, its session locked: this serialises
    two clicks at the same counter while other counters go on in parallel.

    Refused when it is paused (`counter_paused`), held by another clerk (`counter_taken`) or serving a
    ticket (`ticket_in_service`: complete it first). SQLite runs one writer at a time, so the last is
    decided here; PostgreSQL decides it again in the statement that reads the queue (`head_of_queue`),
    which sees what committed while this one waited for the lock.
    """
    row = db.session.execute(_desk_statement(), {"desk": counter_id}).first()
    if row is None:
        _counter_for(counter_id, principal)  # 404 and 403 before "not open"
        _refuse(CounterNotOpen())
    try:
        require_centre(principal, row.centre_id)
    except Exception:
        db.session.rollback()
        raise
    if row.account_id != principal.id:
        session = _open_session_of(counter_id)
        centre = db.session.get(Centre, row.centre_id)
        _refuse(CounterTaken(details=_holder_details(session, centre.timezone)))
    if row.paused_at is not None:
        _refuse(CounterPaused())
    if row.serving:
        _refuse(TicketInService())
    return row.centre_id, list(row.services or [])
