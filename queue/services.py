"""The ticket's life: issuing and numbering tickets, check-in, positions and waits, a counter calling the
next one, serving, completing, no-shows, transfers and ratings.

Beside it: who is next and how a counter claims it (`ordering.py`), counters (`counters.py`), urgent
passports (`urgent.py`), the end of the day and the figures (`stats.py`), the live queue (`live.py`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import (
    JSON,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from app import clock
from app.audit import record_audit
from app.catalogue.models import Centre, Closure, Counter, Offering, Service
from app.catalogue.services import centre_today, get_centre, is_open, opening_state
from app.database import UTCDateTime, commit_keeping_state
from app.dialect import advisory_xact_lock, dialect_insert, for_update, on_postgres, statement_connection
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.security import Principal, require_centre
from booking.errors import InvalidBookingState
from notifications.services import notify_citizen

from . import live
from .answers import TicketAnswer, answer_columns, ticket_answer
from .counters import (
    counter_payload,
    lock_open_counter,
    lock_session_of,
    open_sessions,
)
from .errors import (
    ActiveTicketExists,
    CentreClosed,
    RatingNotAllowed,
    RemoteTicketsDisabled,
    ServiceNotOffered,
    TicketInService,
    TicketState,
    VisitServiceNotOffered,
)
from .models import (
    ACTIVE_STATUSES,
    MAX_VISIT_SERVICES,
    PRIORITY_BY_SOURCE,
    CounterSession,
    Ticket,
    TicketSequence,
    TicketService,
    UrgentRequest,
    new_public_id,
)
from .ordering import (
    QueueHead,
    WaitingTicket,
    ahead_filter,
    ahead_params,
    claim_first,
    head_of_queue,
    literal_in,
)

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 50
# Check-ins of one citizen at one centre take turns, so two of their bookings never make two tickets.
CHECK_IN_LOCK_NAMESPACE = 7320
RECENT_CALLS = 8
_TICKETS = Ticket.__table__


@functools.cache
def _offered_statement():
    return (
        select(Service)
        .join(Offering, Offering.service_code == Service.code)
        .where(
            Offering.centre_id == bindparam("centre_id"),
            Offering.service_code == bindparam("service_code"),
            Offering.active.is_(True),
            Service.active.is_(True),
        )
    )


def offered_service(centre_id: str, service_code: str) -> Service:
    """The service, if the centre offers it now (else `ServiceNotOffered`): one read."""
    service = db.session.scalar(_offered_statement(), {"centre_id": centre_id, "service_code": service_code})
    if service is None:
        raise ServiceNotOffered(details={"service": service_code})
    return service


def visit_services(centre_id: str, service_code: str | None, services: Sequence[str] | None) -> list[Service]:
    """The services of a visit, in order: `services` (1–4, no repeats, each offered here, else 422 naming
    the one that is not) or the single `service_code` (`service_not_offered` as ever)."""
    if services is None:
        if service_code is None:
            raise ValidationFailed(details={"services": "required"})
        return [offered_service(centre_id, service_code)]
    codes = list(services)
    if not 1 <= len(codes) <= MAX_VISIT_SERVICES:
        raise ValidationFailed(details={"services": f"between 1 and {MAX_VISIT_SERVICES}"})
    if len(set(codes)) != len(codes):
        raise ValidationFailed(details={"services": "duplicate"})
    offered = []
    for code in codes:
        try:
            offered.append(offered_service(centre_id, code))
        except ServiceNotOffered:
            raise VisitServiceNotOffered(details={"service": code}) from None
    return offered


class _ClosureDay(NamedTuple):
    date: dt.date


class _Desk(NamedTuple):
    """What a walk-in ticket needs of its centre, read with its service in one statement: what `is_open`
    reads (zone, weekly hours, the closures among the days it looks at) and what numbering reads."""

    id: str
    timezone: str
    weekly_hours: dict[str, Any] | None
    closures: list[_ClosureDay]


class _Offered(NamedTuple):
    code: str
    ticket_prefix: str


# A local day is within a day of the UTC one, so these UTC dates, relative to today's, hold every local day
# `is_open` reads (today and yesterday, in the centre's zone) whatever the zone.
_CLOSURE_DAYS = (-2, -1, 0, 1)


@functools.cache
def _walk_in_place_statement():
    """The centre (active or not), whether each day of _CLOSURE_DAYS is a closure, and the service if the
    centre offers it now: one row, or none for an unknown centre (built once)."""
    centre, offering, service, closure = (m.__table__ for m in (Centre, Offering, Service, Closure))
    offered = and_(
        offering.c.centre_id == centre.c.id,
        offering.c.service_code == bindparam("service_code"),
        offering.c.active.is_(True),
    )
    closed = (
        exists()
        .where(closure.c.centre_id == centre.c.id, closure.c.date == bindparam(f"day_{i}", type_=Date()))
        .label(f"closed_{i}")
        for i in range(len(_CLOSURE_DAYS))
    )
    return (
        select(
            centre.c.id,
            centre.c.timezone,
            centre.c.weekly_hours,
            centre.c.active,
            service.c.code,
            service.c.ticket_prefix,
            *closed,
        )
        .select_from(
            centre.outerjoin(offering, offered).outerjoin(
                service, and_(service.c.code == offering.c.service_code, service.c.active.is_(True))
            )
        )
        .where(centre.c.id == bindparam("centre_id"))
    )


def _walk_in_place(centre_id: str, service_code: str) -> tuple[_Desk, _Offered] | None:
    """The centre and the service of a one-service walk-in ticket in one read, refusing as `get_centre`,
    `require_open` and `offered_service` do, in that order; None when the centre is closed now (the caller
    takes the long way, which says when it opens)."""
    today = clock.now().date()
    params = {"centre_id": centre_id, "service_code": service_code}
    days = [today + dt.timedelta(days=offset) for offset in _CLOSURE_DAYS]
    params.update({f"day_{i}": day for i, day in enumerate(days)})
    with statement_connection() as connection:  # a read: no transaction of its own on PostgreSQL
        row = connection.execute(_walk_in_place_statement(), params).first()
    if row is None or not row.active:
        raise NotFound()
    closures = [_ClosureDay(day) for i, day in enumerate(days) if row[6 + i]]
    desk = _Desk(row.id, row.timezone, row.weekly_hours, closures)
    if not is_open(desk):  # is_open reads only these attributes of a centre
        return None
    if row.code is None:
        raise ServiceNotOffered(details={"service": service_code})
    return desk, _Offered(row.code, row.ticket_prefix)


def require_open(centre: Centre) -> None:
    """Tickets are issued only while the centre is open: else `centre_closed`, saying when it opens next."""
    if is_open(centre):
        return
    state = opening_state(centre)
    if not state.open:
        db.session.rollback()
        opens_at = state.opens_at.astimezone(zoneinfo.ZoneInfo(centre.timezone)) if state.opens_at else None
        raise CentreClosed(details={"opens_at": opens_at.isoformat() if opens_at else None})


def allocate_ticket_seq(*, centre_id: str, service_code: str, local_date: dt.date) -> int:
    """The next number of a centre's service for a local day, atomically (an upsert, never a count)."""
    table = TicketSequence.__table__
    stmt = (
        dialect_insert(table)
        .values(centre_id=centre_id, service_code=service_code, local_date=local_date, last_seq=1)
        .on_conflict_do_update(
            index_elements=["centre_id", "service_code", "local_date"],
            set_={"last_seq": table.c.last_seq + 1},
        )
        .returning(table.c.last_seq)
    )
    return db.session.execute(stmt).scalar_one()


@functools.cache
def _numbered_insert_statement(columns: tuple[str, ...]):
    """PostgreSQL: the day's next number and the ticket in one statement (the sequence upserted in a CTE,
    the ticket inserted from its row), returning the id, seq and number; built once per set of columns.

    One statement is atomic by itself, so a walk-in ticket needs no transaction around it; inside one (a
    check-in) it is part of it, as the two statements were."""
    sequences = TicketSequence.__table__
    next_seq = (
        postgresql.insert(sequences)
        .values(
            centre_id=bindparam("seq_centre"),
            service_code=bindparam("seq_service"),
            local_date=bindparam("seq_day"),
            last_seq=1,
        )
        .on_conflict_do_update(
            index_elements=["centre_id", "service_code", "local_date"],
            set_={"last_seq": sequences.c.last_seq + 1},
        )
        .returning(sequences.c.last_seq)
        .cte("next_seq")
    )
    digits = cast(next_seq.c.last_seq, String)
    number = (
        bindparam("prefix", type_=String())
        + "-"
        + func.lpad(digits, func.greatest(3, func.length(digits)), "0")
    )
    rows = select(
        *(bindparam(name, type_=_TICKETS.c[name].type) for name in columns), next_seq.c.last_seq, number
    )
    return (
        _TICKETS.insert()
        .from_select([*columns, "seq", "number"], rows)
        .returning(_TICKETS.c.id, _TICKETS.c.seq, _TICKETS.c.number)
    )


@functools.cache
def _numbered_insert_with_place_statement(columns: tuple[str, ...], tier: int):
    """PostgreSQL: `_numbered_insert_statement` and the new ticket's `_place_statement` in one statement:
    a row per place row, each with the new ticket's id, seq and number. The place is read in the INSERT's
    snapshot, which cannot see the new ticket itself; the new ticket's id only breaks ties with tickets
    issued at the same instant, and every ticket the statement can see has a smaller one, so the place is
    bound with the largest id instead (`_PLACE_IDENT`). Built once per set of columns and rank tier."""
    new = _numbered_insert_statement(columns).cte("new_ticket")
    place = _place_statement(tier).subquery("place")
    return select(new.c.id, new.c.seq, new.c.number, *place.c).select_from(new).join(place, true())


_PLACE_IDENT = 2**31 - 1  # larger than any ticket id (an INTEGER column)


def _numbering_params(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The parameters of `_numbered_insert_statement`: the ticket's values, its stream's and its prefix."""
    return {
        **values,
        "seq_centre": values["centre_id"],
        "seq_service": values["service_code"],
        "seq_day": values["local_date"],
        "prefix": prefix,
    }


def _insert_numbered_ticket(values: dict[str, Any], *, prefix: str) -> tuple[int, int, str]:
    """Number and insert a ticket (`values` without seq and number): (id, seq, number)."""
    if on_postgres():
        with statement_connection() as connection:
            row = connection.execute(
                _numbered_insert_statement(tuple(values)), _numbering_params(values, prefix)
            ).one()
        return row.id, row.seq, row.number
    seq = allocate_ticket_seq(
        centre_id=values["centre_id"], service_code=values["service_code"], local_date=values["local_date"]
    )
    number = f"{prefix}-{seq:03d}"
    ticket_id = db.session.execute(
        _insert_ticket_statement(), {**values, "seq": seq, "number": number}
    ).scalar_one()
    return ticket_id, seq, number


@functools.cache
def _insert_ticket_statement():
    """INSERT of a new ticket returning its id (built once; SQLAlchemy compiles it per set of columns)."""
    return _TICKETS.insert().returning(_TICKETS.c.id)


# What a new ticket's answer holds for the columns _create_ticket does not write.
_UNWRITTEN = (
    "called_at",
    "started_at",
    "ended_at",
    "counter_id",
    "served_by_id",
    "transferred_from_id",
    "rating",
    "rating_comment",
    "rated_at",
)


def _create_ticket(
    *,
    centre: Centre,
    services: Sequence[Service],
    source: str,
    vulnerable: bool = False,
    account_id: int | None = None,
    booking_id: int | None = None,
    urgent_request_id: int | None = None,
    appointment_at: dt.datetime | None = None,
    party_size: int = 1,
    service_bookings: list[dict[str, Any] | None] | None = None,
    place: bool = False,
) -> TicketAnswer:
    """Number and add a waiting ticket in its first service's stream (no commit): one INSERT, answered from
    the values written (no unit of work, nothing loaded again). `place`: the answer carries its position
    and wait (on PostgreSQL, for a one-service visit, read by the same statement)."""
    local_date = centre_today(centre)
    service = services[0]
    values: dict[str, Any] = {
        "public_id": new_public_id(),
        "centre_id": centre.id,
        "service_code": service.code,
        "services": [s.code for s in services],
        "services_left": len(services) - 1,
        "service_bookings": service_bookings,
        "party_size": party_size,
        "local_date": local_date,
        "source": source,
        "priority": PRIORITY_BY_SOURCE[source],
        "vulnerable": vulnerable,
        "status": "waiting",
        "issued_at": clock.now(),
        "appointment_at": appointment_at,
        "recall_count": 0,
        "account_id": account_id,
        "booking_id": booking_id,
        "urgent_request_id": urgent_request_id,
    }
    # A ticket without bookings keeps SQL NULL there (JSON would write None as 'null').
    written = {k: v for k, v in values.items() if v is not None or k != "service_bookings"}
    if place and len(services) == 1 and on_postgres():
        return _insert_placed_ticket(written, values, prefix=service.ticket_prefix, timezone=centre.timezone)
    ticket_id, seq, number = _insert_numbered_ticket(written, prefix=service.ticket_prefix)
    return TicketAnswer(
        id=ticket_id,
        **values,
        seq=seq,
        number=number,
        **dict.fromkeys(_UNWRITTEN),
        timezone=centre.timezone,
        counter=None,
    )


def _insert_placed_ticket(
    written: dict[str, Any], values: dict[str, Any], *, prefix: str, timezone: str
) -> TicketAnswer:
    """PostgreSQL: number, insert and place a one-service ticket in one statement
    (`_numbered_insert_with_place_statement`), answered with its position and wait."""
    ticket = TicketAnswer(
        id=_PLACE_IDENT,
        **values,
        seq=None,
        number="",
        **dict.fromkeys(_UNWRITTEN),
        timezone=timezone,
        counter=None,
    )
    tier, place = ahead_params(ticket)
    params = {
        **_numbering_params(written, prefix),
        **place,
        "samples": current_app.config["QUEUE_SERVICE_TIME_SAMPLES"],
    }
    with statement_connection() as connection:
        rows = connection.execute(_numbered_insert_with_place_statement(tuple(written), tier), params).all()
    ticket.id, ticket.seq, ticket.number = rows[0][0], rows[0][1], rows[0][2]
    _placed(ticket, [row[3:] for row in rows])
    ticket.placed = True
    return ticket


def _commit_ticket_change(
    centre_id: str,
    *extra_events: tuple[str, dict[str, Any]],
    waiting_delta: Mapping[str, int] | None = None,
    keep_state: bool = False,
) -> None:
    """Commit, then tell the centre's screens and consoles (events only after the commit).

    `waiting_delta` is how many tickets each service's waiting list gained (or lost, negative) in the
    transaction: the counts the screens show move by it and are published (None: nothing to publish).
    `keep_state`: the answer is the rows just written under lock, kept as they are (not read again after the
    commit, when other counters may have moved them on).
    """
    if keep_state:
        commit_keeping_state(db.session)
    else:
        db.session.commit()
    live.publish_changes(
        centre_id,
        extra_events,
        waiting_delta,
        recount=lambda: live.recount_waiting(centre_id),
        at=clock.now().isoformat(),
    )


def issue_walk_in_ticket(
    *,
    centre_id: str,
    service_code: str | None = None,
    vulnerable: bool = False,
    services: Sequence[str] | None = None,
) -> TicketAnswer:
    """A walk-in ticket from a kiosk or a clerk, for one service or several in order."""
    place = _walk_in_place(centre_id, service_code) if services is None and service_code else None
    if place is not None:
        centre, service = place
        visit = [service]
    else:
        centre = get_centre(centre_id)
        require_open(centre)
        visit = visit_services(centre_id, service_code, services)
    ticket = _create_ticket(
        centre=centre, services=visit, source="walk_in", vulnerable=vulnerable, place=place is not None
    )
    _commit_ticket_change(centre_id, waiting_delta={ticket.service_code: 1})
    return ticket


def is_vulnerable_citizen(*, account_id: int, on: dt.date) -> bool:
    """Whether the registry says the citizen is elderly (65+) or disabled."""
    from app.accounts.models import Account
    from app.registry.services import lookup_person

    account = db.session.get(Account, account_id)
    record = lookup_person(account.national_id) if account is not None else None
    return bool(record and (record.disability or record.age_on(on) >= 65))


def issue_remote_ticket(
    *, centre_id: str, service_code: str | None = None, account_id: int, services: Sequence[str] | None = None
) -> TicketAnswer:
    """A ticket taken in the app, where the centre allows it; one active remote ticket per citizen."""
    centre = get_centre(centre_id)
    if not centre.remote_tickets_enabled:
        raise RemoteTicketsDisabled()
    require_open(centre)
    visit = visit_services(centre_id, service_code, services)
    vulnerable = is_vulnerable_citizen(account_id=account_id, on=centre_today(centre))
    try:
        ticket = _create_ticket(
            centre=centre, services=visit, source="remote", vulnerable=vulnerable, account_id=account_id
        )
    except IntegrityError:
        db.session.rollback()
        raise ActiveTicketExists() from None
    _commit_ticket_change(centre_id, waiting_delta={ticket.service_code: 1})
    return ticket


def issue_urgent_ticket(*, centre_id: str, service_code: str, reason: str, actor: Principal) -> TicketAnswer:
    """A supervisor's urgent ticket for a walk-in visitor, with the reason in the audit log."""
    centre = get_centre(centre_id)
    require_open(centre)
    service = offered_service(centre_id, service_code)
    ticket = _create_ticket(centre=centre, services=[service], source="urgent")
    record_audit(
        actor_id=actor.id,
        actor_role=actor.role,
        action="urgent_ticket.issued",
        subject_type="ticket",
        subject_id=ticket.id,
        centre_id=centre_id,
        reason=reason,
        details={"number": ticket.number, "service": service_code},
    )
    _commit_ticket_change(centre_id, waiting_delta={service_code: 1})
    return ticket


def check_in_booking(
    *, reference: str, centre_id: str | None, allow_late: bool, account_id: int | None = None
) -> Ticket | TicketAnswer:
    """Check a booking in and give its visitor a ticket, in one transaction.

    An urgent booking becomes an `urgent` ticket; a late one (when allowed) a walk-in ticket; otherwise
    an `appointment` ticket due at its slot. `account_id` restricts the booking to its owner (404).

    One visit, one ticket: the citizen's other bookings at the centre that day whose check-in is open are
    checked in with it, their services on the ticket in slot order; a booking checked in later while the
    ticket is still active joins it (among the services still to come, in slot order) instead of taking
    another ticket. A family booking's ticket carries its seats as `party_size`.
    """
    from booking import services as booking

    if account_id is not None:
        owned = booking.get_booking(reference=reference, account_id=account_id)
        centre_id = owned.centre_id if centre_id is None else centre_id
    if centre_id is None:
        raise NotFound()
    require_open(get_centre(centre_id))
    try:
        checked = booking.mark_checked_in(reference=reference, centre_id=centre_id, allow_late=allow_late)
    except InvalidBookingState:
        # Checked in already with another booking of the visit: its ticket is the answer.
        ticket = _ticket_of_checked_in(reference, centre_id)
        if ticket is None:
            raise
        db.session.rollback()
        return ticket
    centre = get_centre(checked.centre_id)
    if checked.kind == "urgent":
        urgent_request = db.session.scalar(
            select(UrgentRequest).where(
                UrgentRequest.booking_id == checked.booking_id, UrgentRequest.status == "approved"
            )
        )
        if urgent_request is not None:
            urgent_request.status = "used"
        source = "urgent"
        request_id = urgent_request.id if urgent_request is not None else None
    else:
        source = "walk_in" if checked.late else "appointment"
        request_id = None
    if source == "urgent":
        visit = [checked]
    else:
        # Check-ins of one citizen take turns here, so two of their bookings never make two tickets.
        advisory_xact_lock(f"{centre.id}:{checked.account_id}", CHECK_IN_LOCK_NAMESPACE)
        companions = booking.check_in_same_day_bookings(checked=checked, limit=MAX_VISIT_SERVICES - 1)
        visit = sorted([checked, *companions], key=lambda c: c.slot_start or clock.now())
        joined = _join_visit(centre, visit)
        if joined is not None:
            ticket, delta = joined
            _commit_ticket_change(centre.id, waiting_delta=delta, keep_state=True)
            return ticket
    first = visit[0]
    ticket = _create_ticket(
        centre=centre,
        services=[db.session.get(Service, c.service_code) for c in visit],
        party_size=max(_party_size(c) for c in visit),
        service_bookings=[_visit_entry(c) for c in visit],
        source=source,
        vulnerable=is_vulnerable_citizen(account_id=checked.account_id, on=centre_today(centre)),
        account_id=checked.account_id,
        booking_id=checked.booking_id,
        urgent_request_id=request_id,
        appointment_at=first.slot_start if source == "appointment" else None,
    )
    _commit_ticket_change(centre.id, waiting_delta={ticket.service_code: 1})
    return ticket


def _party_size(checked) -> int:
    """A family booking's seats (bookings without a `seats` column are one person's)."""
    return max(1, int(getattr(checked, "seats", 1) or 1))


def _visit_entry(checked) -> dict[str, Any]:
    return {
        "booking_id": checked.booking_id,
        "slot_start": checked.slot_start.isoformat() if checked.slot_start else None,
    }


def _ticket_of_checked_in(reference: str, centre_id: str) -> Ticket | None:
    """The active ticket that carries a booking checked in already (None if none does)."""
    from booking import services as booking

    owner = booking.checked_in_owner(reference=reference, centre_id=centre_id)
    if owner is None:
        return None
    booking_id, account_id = owner
    tickets = db.session.scalars(
        select(Ticket).where(
            Ticket.centre_id == centre_id, Ticket.account_id == account_id, Ticket.status.in_(ACTIVE_STATUSES)
        )
    ).all()
    for ticket in tickets:
        if ticket.booking_id == booking_id or any(
            (entry or {}).get("booking_id") == booking_id for entry in ticket.service_bookings or []
        ):
            return ticket
    return None


def _join_visit(centre: Centre, visit: Sequence[Any]) -> tuple[Ticket, dict[str, int]] | None:
    """The citizen's active ticket of a check-in today at this centre, with these bookings' services added
    among its services still to come, in slot order (before the current one too while the ticket waits: it
    moves to that service's queue, keeping its number and issue time), and how the waiting lists changed;
    None if there is none, or it has one of these services or no room for them all (then they get a ticket
    of their own). No commit."""
    account_id = visit[0].account_id
    ticket = db.session.scalar(
        for_update(
            select(Ticket)
            .where(
                Ticket.centre_id == centre.id,
                Ticket.local_date == centre_today(centre),
                Ticket.account_id == account_id,
                Ticket.booking_id.is_not(None),
                Ticket.status.in_(ACTIVE_STATUSES),
            )
            .order_by(Ticket.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
    )
    codes = [c.service_code for c in visit]
    if (
        ticket is None
        or set(codes) & set(ticket.services)
        or len(ticket.services) + len(codes) > MAX_VISIT_SERVICES
    ):
        return None
    services = list(ticket.services)
    bookings = list(ticket.service_bookings or [None] * len(services))
    current = services.index(ticket.service_code)
    # A waiting ticket's current service may still give way to an earlier slot; a called one's may not.
    first_free = current if ticket.status == "waiting" else current + 1
    for checked in visit:
        entry = _visit_entry(checked)
        at = len(services)
        for i in range(first_free, len(services)):
            other = (bookings[i] or {}).get("slot_start")
            if other and entry["slot_start"] and other > entry["slot_start"]:
                at = i
                break
        services.insert(at, checked.service_code)
        bookings.insert(at, entry)
        ticket.party_size = max(ticket.party_size, _party_size(checked))
    ticket.services, ticket.service_bookings = services, bookings
    ticket.services_left += len(visit)
    delta: dict[str, int] = {}
    if services[current] != ticket.service_code:
        delta = {ticket.service_code: -1, services[current]: 1}
        ticket.service_code, ticket.seq = services[current], None
        if ticket.source == "appointment" and bookings[current] and bookings[current].get("slot_start"):
            ticket.appointment_at = dt.datetime.fromisoformat(bookings[current]["slot_start"])
    db.session.flush()
    return ticket, delta


@functools.cache
def _service_time_statement():
    """The last `samples` times a service was served at a centre, per person: finished tickets and the
    services served on the way by tickets of several services (built once)."""
    samples = bindparam("samples")
    finished = (
        select(Ticket.started_at, Ticket.ended_at, Ticket.party_size)
        .where(
            Ticket.centre_id == bindparam("centre_id"),
            Ticket.service_code == bindparam("service_code"),
            Ticket.status == "done",
            Ticket.started_at.is_not(None),
            Ticket.ended_at.is_not(None),
        )
        .order_by(Ticket.ended_at.desc())
        .limit(samples)
    )
    on_the_way = (
        select(TicketService.started_at, TicketService.ended_at, TicketService.party_size)
        .where(
            TicketService.centre_id == bindparam("centre_id"),
            TicketService.service_code == bindparam("service_code"),
            TicketService.started_at.is_not(None),
        )
        .order_by(TicketService.ended_at.desc())
        .limit(samples)
    )
    both = union_all(select(*finished.subquery().c), select(*on_the_way.subquery().c)).subquery()
    return select(*both.c).order_by(both.c.ended_at.desc()).limit(samples)


def average_service_minutes(*, centre_id: str, service_code: str) -> float:
    """Rolling mean per person of the last times a service was served at a centre (the catalogue's figure
    if none)."""
    params = {
        "centre_id": centre_id,
        "service_code": service_code,
        "samples": current_app.config["QUEUE_SERVICE_TIME_SAMPLES"],
    }
    average = _mean_minutes(db.session.execute(_service_time_statement(), params).all())
    if average is not None:
        return average
    service = db.session.get(Service, service_code)
    return float(service.avg_service_minutes if service else 10)


# The kinds of rows `_place_statement` answers.
_AHEAD, _WORKING, _CATALOGUE, _SAMPLE = 0, 1, 2, 3


@functools.cache
def _place_statement(tier: int):
    """A waiting ticket's place and what its wait is made of, in one round trip: one row counting the tickets
    ranked before it and their people (`ordering.ahead_filter`), one per working counter with its services,
    the catalogue's service time, and the service's latest times served (`_service_time_statement`).
    Built once per rank tier."""
    moment, no_moment, no_services = UTCDateTime(), cast(null(), UTCDateTime()), cast(null(), JSON())
    zero = literal_column("0", Integer)

    def kind(value: int):
        return literal_column(str(value), Integer).label("kind")

    times = _service_time_statement().subquery("times")
    return union_all(
        select(
            kind(_AHEAD),
            cast(null(), moment).label("started_at"),
            cast(null(), moment).label("ended_at"),
            func.count().label("n"),
            func.coalesce(func.sum(Ticket.party_size), 0).label("people"),
            no_services.label("services"),
        ).where(*ahead_filter(tier)),
        select(kind(_WORKING), no_moment, no_moment, zero, zero, CounterSession.services)
        .join(Counter, Counter.id == CounterSession.counter_id)
        .where(
            Counter.centre_id == bindparam("centre_id"),
            CounterSession.closed_at.is_(None),
            CounterSession.paused_at.is_(None),
        ),
        select(kind(_CATALOGUE), no_moment, no_moment, Service.avg_service_minutes, zero, no_services).where(
            Service.code == bindparam("service_code")
        ),
        select(kind(_SAMPLE), times.c.started_at, times.c.ended_at, times.c.party_size, zero, no_services),
    )


def _mean_minutes(samples: Sequence[tuple[dt.datetime, dt.datetime, int]]) -> float | None:
    """Rolling mean per person of the times served (`samples`); None without any."""
    durations = [
        (end - start).total_seconds() / 60 / max(1, party) for start, end, party in samples if end >= start
    ]
    return max(0.5, sum(durations) / len(durations)) if durations else None


def with_position(ticket: Ticket | TicketAnswer) -> Ticket | TicketAnswer:
    """Attach `position` (1 = next in its current service) and `estimated_wait_minutes` to a ticket.

    The wait is until the ticket's last service is called: the people ahead in the current service's
    stream, then this ticket's own time at each service before its last (it keeps its place in each
    next stream, being requeued with its original issue time). A waiting ticket's figures are read in one
    statement (`_place_statement`)."""
    if isinstance(ticket, TicketAnswer) and ticket.placed:  # placed by the statement that issued it
        return ticket
    ticket.position = None
    ticket.estimated_wait_minutes = None
    if ticket.status not in ACTIVE_STATUSES:
        return ticket
    services = list(ticket.services or [ticket.service_code])
    remaining = services[services.index(ticket.service_code) :] if ticket.service_code in services else []
    own = sum(
        average_service_minutes(centre_id=ticket.centre_id, service_code=code) * ticket.party_size
        for code in remaining[:-1]
    )
    if ticket.status in ("called", "serving"):
        ticket.position = 0
        ticket.estimated_wait_minutes = math.ceil(own)
        return ticket
    tier, params = ahead_params(ticket)
    params["samples"] = current_app.config["QUEUE_SERVICE_TIME_SAMPLES"]
    with statement_connection() as connection:
        rows = connection.execute(_place_statement(tier), params).all()
    return _placed(ticket, rows, own)


def _placed(ticket: Any, rows: Sequence[Any], own: float = 0.0) -> Any:
    """Set the ticket's position and wait from the rows of `_place_statement` (`own`: its own time at the
    services of its visit before the current one)."""
    ahead = people = counters = 0
    catalogue, samples = None, []
    for row_kind, started_at, ended_at, n, carried, counter_services in rows:
        if row_kind == _AHEAD:
            ahead, people = int(n), int(carried)
        elif row_kind == _WORKING:
            # Paused counters call nobody, so they shorten no wait.
            counters += ticket.service_code in (counter_services or [])
        elif row_kind == _CATALOGUE:
            catalogue = n
        else:
            samples.append((started_at, ended_at, n))
    average = _mean_minutes(samples)
    if average is None:
        average = float(catalogue if catalogue is not None else 10)
    ticket.position = ahead + 1
    ticket.estimated_wait_minutes = math.ceil(people * average / max(1, counters) + own)
    return ticket


def get_ticket(*, ticket_id: int, principal: Principal) -> Ticket:
    """A ticket for its citizen (others get 404), or for staff and kiosks of its centre (403 elsewhere)."""
    ticket = db.session.get(Ticket, ticket_id)
    if principal.role == "citizen":
        if ticket is None or ticket.account_id != principal.id:
            raise NotFound()
        return ticket
    if ticket is None:
        raise NotFound()
    require_centre(principal, ticket.centre_id)
    return ticket


def list_my_tickets(*, account_id: int):
    """A citizen's tickets, newest first (a select for pagination)."""
    return select(Ticket).where(Ticket.account_id == account_id).order_by(Ticket.id.desc())


def call_payload(ticket: Ticket | TicketAnswer) -> dict[str, Any]:
    """What a screen shows for a call: number → counter."""
    return {
        "ticket_id": ticket.id,
        "number": ticket.number,
        "service": ticket.service_code,
        "counter": ticket.counter if isinstance(ticket, TicketAnswer) else counter_payload(ticket.counter),
        "called_at": ticket.called_at.isoformat() if ticket.called_at else None,
        "recall_count": ticket.recall_count,
    }


def queue_snapshot(*, centre_id: str) -> dict[str, Any]:
    """The public state of a centre's queue: waiting per service, the latest calls, counters open."""
    centre = get_centre(centre_id)
    counts = live.waiting_counts(centre_id=centre_id)
    offerings = sorted((o for o in centre.offerings if o.active), key=lambda o: o.service_code)
    recent = db.session.scalars(
        select(Ticket)
        .where(
            Ticket.centre_id == centre_id,
            Ticket.local_date == centre_today(centre),
            Ticket.called_at.is_not(None),
            Ticket.counter_id.is_not(None),
        )
        .order_by(Ticket.called_at.desc(), Ticket.id.desc())
        .limit(RECENT_CALLS)
    ).all()
    return {
        "centre_id": centre.id,
        "name_ar": centre.name_ar,
        "name_en": centre.name_en,
        "timezone": centre.timezone,
        "services": [
            {
                "code": o.service_code,
                "name_ar": o.service.name_ar,
                "name_en": o.service.name_en,
                "prefix": o.service.ticket_prefix,
                "waiting": counts.get(o.service_code, 0),
            }
            for o in offerings
        ],
        "waiting": counts,
        "recent_calls": [call_payload(t) for t in recent],
        "open_counters": len(open_sessions(centre_id=centre_id)),
        "at": clock.now().isoformat(),
    }


def _settle_finished(finished: Sequence[tuple[str, str, int | None]]) -> tuple[bool, dict[str, int]]:
    """After the head's statement put the counter's called ticket back to the queue: whether it did, and how
    the waiting lists changed. A ticket being served there refuses the call (`ticket_in_service`)."""
    if any(status == "serving" for status, _, _ in finished):
        db.session.rollback()
        raise TicketInService()
    delta: dict[str, int] = {}
    for _, service_code, _ in finished:
        delta[service_code] = delta.get(service_code, 0) + 1
    return bool(finished), delta


def call_next_ticket(*, counter_id: int, principal: Principal) -> TicketAnswer | None:
    """Call the next ticket by the policy among the services the counter serves; None if nobody waits.

    Refused while a ticket is being served at this counter (`ticket_in_service`: complete it first), or
    while the counter is paused or held by another clerk. A ticket called but never started goes back to
    the queue first (keeping its place), so it is usually called again. On PostgreSQL that is three
    statements in one transaction: lock the counter's session (and check it); put its called ticket back,
    check that none is being served and read the head of the queue; claim the first candidate nobody else
    is taking. A start clicked meanwhile locks the same session first, so it is either seen or refused.
    """
    centre_id, services = lock_open_counter(counter_id, principal)
    finished, waiting_delta, ticket, head = False, {}, None, None
    for attempt in range(CLAIM_ATTEMPTS):
        now = clock.now()
        # The first read also finishes the counter's current ticket (the next ones only read).
        head = head_of_queue(centre_id, services, now=now, finish_counter=None if attempt else counter_id)
        if not attempt:
            finished, waiting_delta = _settle_finished(head.finished)
        if not head.rows:
            break
        # Past the horizon other counters used up what this snapshot knew: read the queue again then.
        candidates = head.exact()
        # After a few rounds of finding every head ticket taken, wait for locks instead of skipping them.
        ticket = claim_first(
            candidates, counter_id=counter_id, clerk_id=principal.id, now=now, skip_locked=attempt < 3
        )
        if ticket is not None:
            break
    else:
        log.warning("call-next gave up after %s attempts", CLAIM_ATTEMPTS, extra={"counter_id": counter_id})
    if ticket is None:
        if finished:
            _commit_ticket_change(centre_id, waiting_delta=waiting_delta or None)
        else:
            db.session.rollback()
        return None
    _tell_called(ticket, ticket.counter["number"])
    _tell_turn_near(ticket, _next_after(ticket, head))
    waiting_delta[ticket.service_code] = waiting_delta.get(ticket.service_code, 0) - 1
    _commit_ticket_change(centre_id, (live.TICKET_CALLED, call_payload(ticket)), waiting_delta=waiting_delta)
    return ticket


def _next_after(ticket: TicketAnswer, head: QueueHead) -> list[WaitingTicket] | None:
    """Those next in the called ticket's service, from the head call-next just read: the candidates after
    it (those before it were being taken by other counters). None if that head cannot tell enough."""
    near = current_app.config["TURN_NEAR_AHEAD"]
    order = [row for row in head.exact() if row.service_code == ticket.service_code]
    ids = [row.id for row in order]
    after = order[ids.index(ticket.id) + 1 :] if ticket.id in ids else []
    if len(after) > near or head.horizon is None:
        return after
    return None


def _tell_called(ticket: Ticket | TicketAnswer, counter_number: int) -> None:
    """'Go to counter N', in the caller's transaction."""
    if ticket.account_id is None:
        return
    notify_citizen(
        account_id=ticket.account_id,
        kind="ticket_called",
        params={
            "number": ticket.number,
            "counter": counter_number,
            "ticket_id": ticket.id,
            "centre_id": ticket.centre_id,
            "service_code": ticket.service_code,
        },
        # A ticket of several services is called once for each of them.
        dedupe_key=f"ticket_called:{ticket.id}:{ticket.service_code}:{ticket.recall_count}",
    )


def _tell_turn_near(ticket: Ticket | TicketAnswer, order: list[WaitingTicket] | None = None) -> None:
    """'Your turn is near' to the next few waiting for the called ticket's service (`order`: those next,
    in call order, when the caller knows them), in the caller's transaction."""
    near = current_app.config["TURN_NEAR_AHEAD"]
    if near <= 0:
        return
    if order is None:
        order = head_of_queue(ticket.centre_id, [ticket.service_code], now=clock.now()).exact()
    for ahead, row in enumerate(order[: near + 1]):
        if row.account_id is None:
            continue
        notify_citizen(
            account_id=row.account_id,
            kind="turn_near",
            params={
                "number": row.number,
                "ahead": ahead,
                "ticket_id": row.id,
                "centre_id": ticket.centre_id,
                "service_code": row.service_code,
            },
            dedupe_key=f"turn_near:{row.id}:{row.service_code}",
        )


def _staff_ticket(ticket_id: int, principal: Principal, *, lock: bool = True) -> Ticket:
    # The row as it is now (the session keeps objects past commits, and this one may have been read before).
    query = select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
    ticket = db.session.scalar(for_update(query) if lock else query)
    if ticket is None:
        raise NotFound()
    require_centre(principal, ticket.centre_id)
    return ticket


def _require_status(ticket: Ticket, *allowed: str) -> None:
    if ticket.status not in allowed:
        db.session.rollback()
        raise TicketState(details={"status": ticket.status, "allowed": list(allowed)})


def recall_ticket(*, ticket_id: int, principal: Principal) -> Ticket:
    """Announce a called ticket again; after the configured number of calls it becomes a no-show."""
    ticket = _staff_ticket(ticket_id, principal)
    _require_status(ticket, "called")
    if 1 + ticket.recall_count >= current_app.config["QUEUE_MAX_CALLS"]:
        ticket.status = "no_show"
        ticket.ended_at = clock.now()
        _commit_ticket_change(ticket.centre_id)
        return ticket
    ticket.recall_count += 1
    ticket.called_at = clock.now()
    if ticket.counter is not None:
        _tell_called(ticket, ticket.counter.number)
        _tell_turn_near(ticket)
    _commit_ticket_change(ticket.centre_id, (live.TICKET_RECALLED, call_payload(ticket)), waiting_delta={})
    return ticket


def start_ticket(*, ticket_id: int, principal: Principal) -> Ticket:
    """The visitor arrived at the counter: service starts.

    The counter's session is locked before the ticket (the order call-next takes them in), so a call-next
    clicked at the same moment either sees this ticket being served or puts it back before it starts."""
    counter_id = db.session.scalar(select(Ticket.counter_id).where(Ticket.id == ticket_id))
    if counter_id is not None:
        lock_session_of(counter_id)
    ticket = _staff_ticket(ticket_id, principal)
    _require_status(ticket, "called")
    ticket.status = "serving"
    ticket.started_at = clock.now()
    _commit_ticket_change(ticket.centre_id)
    return ticket


@functools.cache
def _complete_statement(any_centre: bool, postgres: bool, bookless: bool = False):
    """Called or serving → done for a ticket at its last service, returning its answer (built once per kind
    of caller and database). `bookless`: only a ticket with no booking behind it (nothing else to complete,
    so the statement is the whole change)."""
    now = bindparam("now", type_=UTCDateTime)
    statement = update(_TICKETS).where(
        _TICKETS.c.id == bindparam("ticket"),
        literal_in(_TICKETS.c.status, "called", "serving"),
        _TICKETS.c.services_left == literal_column("0"),
    )
    if bookless:
        statement = statement.where(_TICKETS.c.booking_id.is_(None), _TICKETS.c.service_bookings.is_(None))
    if not any_centre:
        statement = statement.where(_TICKETS.c.centre_id == bindparam("centre"))
    return statement.values(
        status=literal_column("'done'"), ended_at=now, started_at=func.coalesce(_TICKETS.c.started_at, now)
    ).returning(*(answer_columns() if postgres else _TICKETS.c))


def _record_served(ticket: Ticket, ended_at: dt.datetime) -> None:
    """A service of a visit was served before its last (the last one is the ticket's own row, `done`); a
    second record of one service fails: each (ticket, service) is served once."""
    db.session.execute(
        TicketService.__table__.insert().values(
            ticket_id=ticket.id,
            centre_id=ticket.centre_id,
            service_code=ticket.service_code,
            local_date=ticket.local_date,
            counter_id=ticket.counter_id,
            served_by_id=ticket.served_by_id,
            party_size=ticket.party_size,
            called_at=ticket.called_at,
            started_at=ticket.started_at or ended_at,
            ended_at=ended_at,
        )
    )
    _complete_booking_of(ticket)


def _complete_booking_of(ticket: Ticket | TicketAnswer) -> None:
    """The booking behind the ticket's current service is completed with it (no commit)."""
    booking_id = _booking_of(ticket, ticket.service_code)
    if booking_id is not None:
        from booking import services as booking

        booking.complete_booking(booking_id=booking_id)


def _booking_of(ticket: Ticket | TicketAnswer, service_code: str) -> int | None:
    """The booking behind one of the ticket's services (the ticket's own booking for a one-service one)."""
    for code, entry in zip(ticket.services or [], ticket.service_bookings or [], strict=False):
        if code == service_code:
            return entry.get("booking_id") if entry else None
    return ticket.booking_id if len(ticket.services or []) <= 1 else None


def complete_ticket(*, ticket_id: int, principal: Principal) -> Ticket | TicketAnswer:
    """The current service is done (a called ticket counts as started now), and its booking with it. At the
    last service the ticket is done; before it, the ticket waits in the next service's stream."""
    postgres, any_centre = on_postgres(), principal.role == "admin"
    statement = _complete_statement(any_centre, postgres)
    now = clock.now()
    params = {"ticket": ticket_id, "centre": principal.centre_id, "now": now}
    if postgres and not db.session().in_transaction():
        # A ticket with no booking behind it is done by this one statement: no transaction around it.
        with statement_connection() as connection:
            row = connection.execute(_complete_statement(any_centre, postgres, bookless=True), params).first()
        if row is not None:
            return ticket_answer(row)  # (screens show no completion: nothing to publish)
    row = db.session.execute(statement, params).first()
    if row is None:
        # Unknown, elsewhere, not called or serving, or with services to come: say which (404, 403, 409) or
        # requeue it, with the row locked. If it was called meanwhile, it is completed now.
        locked = _staff_ticket(ticket_id, principal)
        _require_status(locked, "called", "serving")
        if locked.services_left > 0:
            return _requeue_for_next_service(locked, now)
        row = db.session.execute(statement, params).one()
    ticket = ticket_answer(row)
    _complete_booking_of(ticket)
    _commit_ticket_change(ticket.centre_id)
    return ticket


def _requeue_for_next_service(ticket: Ticket, now: dt.datetime) -> Ticket:
    """Put a ticket (locked, called or serving) in its next service's stream with its number and original
    issue time, so it is not sent to the back; screens hear `ticket.requeued`."""
    _record_served(ticket, now)
    done = ticket.service_code
    nxt = ticket.services[ticket.services.index(done) + 1]
    pairs = zip(ticket.services, ticket.service_bookings or [], strict=False)
    slot = next((entry.get("slot_start") for code, entry in pairs if code == nxt and entry), None)
    ticket.service_code = nxt
    ticket.services_left -= 1
    ticket.seq = None
    ticket.status = "waiting"
    ticket.counter, ticket.served_by_id = None, None
    ticket.called_at = ticket.started_at = ticket.ended_at = None
    ticket.recall_count = 0
    if ticket.source == "appointment" and slot:
        ticket.appointment_at = dt.datetime.fromisoformat(slot)
    db.session.flush()
    payload = {"ticket_id": ticket.id, "number": ticket.number, "service": nxt, "from_service": done}
    _commit_ticket_change(
        ticket.centre_id, (live.TICKET_REQUEUED, payload), waiting_delta={nxt: 1}, keep_state=True
    )
    return ticket


def mark_no_show(*, ticket_id: int, principal: Principal) -> Ticket:
    """The called visitor never came to the counter."""
    ticket = _staff_ticket(ticket_id, principal)
    _require_status(ticket, "called")
    ticket.status = "no_show"
    ticket.ended_at = clock.now()
    _commit_ticket_change(ticket.centre_id)
    return ticket


def transfer_ticket(*, ticket_id: int, service_code: str, principal: Principal) -> Ticket:
    """Move a visitor to another service's queue, keeping the printed number and the original issue time."""
    ticket = _staff_ticket(ticket_id, principal)
    _require_status(ticket, "waiting", "called", "serving")
    waiting_delta = {service_code: 1}
    if ticket.status == "waiting":
        waiting_delta[ticket.service_code] = -1
    if service_code == ticket.service_code:
        db.session.rollback()
        raise TicketState(details={"status": ticket.status, "service": service_code})
    offered_service(ticket.centre_id, service_code)
    # The visit's other services stay: the current one is replaced (and the target is not served twice).
    at = ticket.services.index(ticket.service_code) if ticket.service_code in ticket.services else 0
    kept = [
        (code, entry)
        for i, (code, entry) in enumerate(
            zip(ticket.services, ticket.service_bookings or [None] * len(ticket.services), strict=False)
        )
        if i == at or code != service_code
    ]
    at = next(i for i, (code, _) in enumerate(kept) if code == ticket.service_code)
    services = [code for code, _ in kept]
    services[at] = service_code
    bookings = [entry for _, entry in kept] if ticket.service_bookings is not None else None
    now = clock.now()
    ticket.status = "transferred"
    ticket.ended_at = now
    # The printed QR follows the visitor: the copy takes the public id, the old ticket gets a new one.
    public_id, ticket.public_id = ticket.public_id, new_public_id()
    db.session.flush()
    copy = Ticket(
        public_id=public_id,
        centre_id=ticket.centre_id,
        service_code=service_code,
        services=services,
        services_left=len(services) - 1 - at,
        service_bookings=bookings,
        party_size=ticket.party_size,
        number=ticket.number,
        seq=None,
        local_date=ticket.local_date,
        source=ticket.source,
        priority=ticket.priority,
        vulnerable=ticket.vulnerable,
        status="waiting",
        issued_at=ticket.issued_at,
        appointment_at=ticket.appointment_at,
        recall_count=0,
        account_id=ticket.account_id,
        booking_id=ticket.booking_id,
        urgent_request_id=ticket.urgent_request_id,
        transferred_from_id=ticket.id,
    )
    # The remote-ticket index allows one active remote ticket: the old one is no longer active first.
    db.session.flush()
    db.session.add(copy)
    db.session.flush()
    _commit_ticket_change(ticket.centre_id, waiting_delta=waiting_delta)
    return copy


def public_ticket(*, public_id: str) -> dict[str, Any]:
    """What a ticket's public page shows, by its public id (404 if unknown): no name, id or phone."""
    ticket = db.session.scalar(select(Ticket).where(Ticket.public_id == public_id))
    if ticket is None:
        raise NotFound()
    with_position(ticket)
    centre = ticket.centre
    codes = list(ticket.services or [ticket.service_code])
    names = {s.code: s for s in db.session.scalars(select(Service).where(Service.code.in_(codes)))}
    return {
        "public_id": ticket.public_id,
        "number": ticket.number,
        "service": ticket.service_code,
        # Every service of the visit, in order (the current one is `service`).
        "services": [
            {"code": code, "name_ar": names[code].name_ar, "name_en": names[code].name_en} for code in codes
        ],
        "status": ticket.status,
        "position": ticket.position,
        "estimated_wait_minutes": ticket.estimated_wait_minutes,
        "counter": counter_payload(ticket.counter) if ticket.status in ("called", "serving") else None,
        "centre_id": centre.id,
        "centre_name_ar": centre.name_ar,
        "centre_name_en": centre.name_en,
        "timezone": centre.timezone,
        "issued_at": ticket.issued_at,
        "called_at": ticket.called_at,
    }


def rate_ticket(*, ticket_id: int, account_id: int, score: int, comment: str | None) -> Ticket:
    """The citizen rates a finished visit, once."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or ticket.account_id != account_id:
        raise NotFound()
    rated = db.session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == "done", Ticket.rating.is_(None))
        .values(rating=score, rating_comment=comment or None, rated_at=clock.now())
        .execution_options(synchronize_session=False)
    ).rowcount
    if rated != 1:
        db.session.rollback()
        raise RatingNotAllowed(details={"status": ticket.status})
    db.session.commit()
    return db.session.get(Ticket, ticket_id, populate_existing=True)


def expire_unanswered_calls() -> int:
    """Called tickets nobody came for within the grace become no-shows."""
    grace = dt.timedelta(minutes=current_app.config["QUEUE_CALL_GRACE_MINUTES"])
    now = clock.now()
    rows = db.session.execute(
        update(Ticket)
        .where(Ticket.status == "called", Ticket.called_at < now - grace)
        .values(status="no_show", ended_at=now)
        .returning(Ticket.centre_id)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    for centre_id in {centre_id for (centre_id,) in rows}:
        live.publish(
            centre_id,
            live.QUEUE_UPDATED,
            {"waiting": live.waiting_counts(centre_id=centre_id), "at": now.isoformat()},
        )
    return len(rows)
