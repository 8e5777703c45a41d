"""Rules of the ticket queue: issuing and numbering tickets, counters calling them, positions and waits,
urgent passports with their audit trail, the end of the day and the day's figures."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    String,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from ticketing import live
from ticketing.errors import (
    ActiveTicketExists,
    CounterInUse,
    CounterNotOpen,
    InvalidDate,
    RatingNotAllowed,
    RemoteTicketsDisabled,
    ServiceNotOffered,
    ServiceNotServed,
    TicketState,
    UrgentAlreadyDecided,
    UrgentNotAllowed,
    UrgentQuotaExceeded,
    UrgentRequestPending,
)
from ticketing.models import (
    PRIORITY_BY_SOURCE,
    AuditEntry,
    CounterSession,
    Ticket,
    TicketSequence,
    UrgentRequest,
)
from ticketing.policy import (
    TIER_REST,
    CallPolicy,
    Candidate,
    RankKey,
    effective_time,
    is_due,
    order_candidates,
    rank_key,
)

from app import clock
from app.catalogue.models import Centre, Counter, Offering, Service
from app.catalogue.services import centre_today, get_centre
from app.database import UTCDateTime, is_postgres
from app.errors import Forbidden, NotFound
from app.extensions import db
from app.security import Principal, require_centre

log = logging.getLogger(__name__)

# How many tickets of each ordering stream call-next reads: about HEAD_ROWS in all, spread over the streams
# of the counter's services, HEAD_PER_STREAM at most and HEAD_MIN_PER_STREAM at least per stream. At least
# that many are known to be the first in call order, so the true next ticket is among them unless more
# counters are claiming at the very same instant (then it reads again). Every row read is ranked in Python
# on every call: reading 16 per stream of a counter serving 9 services cost more than the rest of the call.
HEAD_PER_STREAM = 16
HEAD_MIN_PER_STREAM = 4
HEAD_ROWS = 48
CLAIM_ATTEMPTS = 50
RECENT_CALLS = 8
URGENT_SERVICE_GROUP = "passport"


# ------------------------------------------------------------------------------------------ helpers


def call_policy() -> CallPolicy:
    """The call-next ordering knobs from the configuration."""
    cfg = current_app.config
    return CallPolicy(
        vulnerable_bonus=dt.timedelta(minutes=cfg["QUEUE_VULNERABLE_BONUS_MINUTES"]),
        appointment_early=dt.timedelta(minutes=cfg["QUEUE_APPOINTMENT_EARLY_MINUTES"]),
        starvation_bound=dt.timedelta(minutes=cfg["QUEUE_STARVATION_MINUTES"]),
    )


def _postgres() -> bool:
    return is_postgres(db.engine)


def _zone(centre: Centre) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(centre.timezone)


def _offered(centre_id: str, service_code: str) -> Service:
    offering = db.session.scalar(
        select(Offering).where(
            Offering.centre_id == centre_id, Offering.service_code == service_code, Offering.active.is_(True)
        )
    )
    if offering is None or not offering.service.active:
        raise ServiceNotOffered(details={"service": service_code})
    return offering.service


def _audit(
    *,
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: Any,
    centre_id: str | None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry to the current transaction (there is no way to change it afterwards)."""
    db.session.add(
        AuditEntry(
            actor_id=actor.id,
            actor_role=actor.role,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            centre_id=centre_id,
            reason=reason,
            details=details or {},
            created_at=clock.now(),
        )
    )


def _notify(**kwargs: Any) -> None:
    """Queue a push for a citizen in the current transaction (the notifications domain's outbox)."""
    from notifications.services import notify_citizen

    notify_citizen(**kwargs)


_TICKETS = Ticket.__table__


def _literal_in(column: Any, *values: str) -> ColumnElement[bool]:
    """`column IN ('a', …)` with the values written into the SQL, so PostgreSQL can match partial indexes
    (whose predicates name these values) even in a generic plan of a prepared statement."""
    return column.in_([literal_column(f"'{value}'") for value in values])


# ------------------------------------------------------------------------------- numbering & issuing


def allocate_ticket_seq(*, centre_id: str, service_code: str, local_date: dt.date) -> int:
    """The next number of a centre's service for a local day, atomically (an upsert, never a count)."""
    dialect = postgresql if _postgres() else sqlite
    table = TicketSequence.__table__
    stmt = (
        dialect.insert(table)
        .values(centre_id=centre_id, service_code=service_code, local_date=local_date, last_seq=1)
        .on_conflict_do_update(
            index_elements=["centre_id", "service_code", "local_date"],
            set_={"last_seq": table.c.last_seq + 1},
        )
        .returning(table.c.last_seq)
    )
    return db.session.execute(stmt).scalar_one()


def _create_ticket(
    *,
    centre: Centre,
    service: Service,
    source: str,
    vulnerable: bool = False,
    account_id: int | None = None,
    booking_id: int | None = None,
    urgent_request_id: int | None = None,
    appointment_at: dt.datetime | None = None,
) -> Ticket:
    """Number and add a waiting ticket (no commit)."""
    local_date = centre_today(centre)
    seq = allocate_ticket_seq(centre_id=centre.id, service_code=service.code, local_date=local_date)
    ticket = Ticket(
        centre_id=centre.id,
        service_code=service.code,
        number=f"{service.ticket_prefix}-{seq:03d}",
        seq=seq,
        local_date=local_date,
        source=source,
        priority=PRIORITY_BY_SOURCE[source],
        vulnerable=vulnerable,
        status="waiting",
        issued_at=clock.now(),
        appointment_at=appointment_at,
        recall_count=0,
        account_id=account_id,
        booking_id=booking_id,
        urgent_request_id=urgent_request_id,
    )
    db.session.add(ticket)
    db.session.flush()
    return ticket


def _commit_ticket_change(
    centre_id: str, *extra_events: tuple[str, dict[str, Any]], waiting_delta: Mapping[str, int] | None = None
) -> None:
    """Commit, then tell the centre's screens and consoles (events only after the commit).

    `waiting_delta` is how many tickets each service's waiting list gained (or lost, negative) in the
    transaction: the counts the screens show move by it and are published (None: nothing to publish).
    """
    db.session.commit()
    live.publish_changes(
        centre_id,
        extra_events,
        waiting_delta,
        recount=lambda: _recount_waiting(centre_id),
        at=clock.now().isoformat(),
    )


def issue_walk_in_ticket(*, centre_id: str, service_code: str, vulnerable: bool = False) -> Ticket:
    """A walk-in ticket from a kiosk or a clerk."""
    centre = get_centre(centre_id)
    service = _offered(centre_id, service_code)
    ticket = _create_ticket(centre=centre, service=service, source="walk_in", vulnerable=vulnerable)
    _commit_ticket_change(centre_id, waiting_delta={service_code: 1})
    return ticket


def is_vulnerable_citizen(*, account_id: int, on: dt.date) -> bool:
    """Whether the registry says the citizen is elderly (65+) or disabled."""
    from app.accounts.models import Account
    from app.registry.services import lookup_person

    account = db.session.get(Account, account_id)
    record = lookup_person(account.national_id) if account is not None else None
    return bool(record and (record.disability or record.age_on(on) >= 65))


def issue_remote_ticket(*, centre_id: str, service_code: str, account_id: int) -> Ticket:
    """A ticket taken in the app, where the centre allows it; one active remote ticket per citizen."""
    centre = get_centre(centre_id)
    if not centre.remote_tickets_enabled:
        raise RemoteTicketsDisabled()
    service = _offered(centre_id, service_code)
    vulnerable = is_vulnerable_citizen(account_id=account_id, on=centre_today(centre))
    try:
        ticket = _create_ticket(
            centre=centre, service=service, source="remote", vulnerable=vulnerable, account_id=account_id
        )
    except IntegrityError:
        db.session.rollback()
        raise ActiveTicketExists() from None
    _commit_ticket_change(centre_id, waiting_delta={service_code: 1})
    return ticket


def issue_urgent_ticket(*, centre_id: str, service_code: str, reason: str, actor: Principal) -> Ticket:
    """A supervisor's urgent ticket for a walk-in visitor, with the reason in the audit log."""
    centre = get_centre(centre_id)
    service = _offered(centre_id, service_code)
    ticket = _create_ticket(centre=centre, service=service, source="urgent")
    _audit(
        actor=actor,
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
) -> Ticket:
    """Check a booking in and give its visitor a ticket, in one transaction.

    An urgent booking becomes an `urgent` ticket; a late one (when allowed) a walk-in ticket; otherwise
    an `appointment` ticket due at its slot. `account_id` restricts the booking to its owner (404).
    """
    from booking import services as booking

    if account_id is not None:
        owned = booking.get_booking(reference=reference, account_id=account_id)
        centre_id = owned.centre_id if centre_id is None else centre_id
    if centre_id is None:
        raise NotFound()
    checked = booking.mark_checked_in(reference=reference, centre_id=centre_id, allow_late=allow_late)
    centre = get_centre(checked.centre_id)
    service = db.session.get(Service, checked.service_code)
    if checked.kind == "urgent":
        request = db.session.scalar(
            select(UrgentRequest).where(
                UrgentRequest.booking_id == checked.booking_id, UrgentRequest.status == "approved"
            )
        )
        if request is not None:
            request.status = "used"
        source = "urgent"
        request_id = request.id if request is not None else None
    else:
        source = "walk_in" if checked.late else "appointment"
        request_id = None
    ticket = _create_ticket(
        centre=centre,
        service=service,
        source=source,
        vulnerable=is_vulnerable_citizen(account_id=checked.account_id, on=centre_today(centre)),
        account_id=checked.account_id,
        booking_id=checked.booking_id,
        urgent_request_id=request_id,
        appointment_at=checked.slot_start if source == "appointment" else None,
    )
    _commit_ticket_change(centre.id, waiting_delta={service.code: 1})
    return ticket


# ------------------------------------------------------------------------------ reading the queue


class _Waiting(NamedTuple):
    """A waiting ticket as the queue is read (a tuple: hundreds are read on every call)."""

    id: int
    source: str
    issued_at: dt.datetime
    vulnerable: bool
    appointment_at: dt.datetime | None
    account_id: int | None
    service_code: str
    number: str

    def candidate(self) -> Candidate:
        return Candidate(self.id, self.source, self.issued_at, self.vulnerable, self.appointment_at)


_WAITING_COLUMNS = (
    Ticket.id,
    Ticket.source,
    Ticket.issued_at,
    Ticket.vulnerable,
    Ticket.appointment_at,
    Ticket.account_id,
    Ticket.service_code,
    Ticket.number,
)


def _waiting_query(centre_id, services):
    return select(*_WAITING_COLUMNS).where(
        Ticket.centre_id == centre_id, Ticket.status == "waiting", Ticket.service_code.in_(services)
    )


# The streams the policy's order is merged from; each is sorted by the key the policy ranks it by.
_STREAM_URGENT, _STREAM_WALK_IN, _STREAM_WALK_IN_VULNERABLE = 0, 1, 2
_STREAM_APPOINTMENT_DUE, _STREAM_APPOINTMENT, _STREAM_APPOINTMENT_VULNERABLE = 3, 4, 5


# Within a stream type, each (service, source, vulnerable) part is read on its own, so each is one short
# scan of ix_tickets_waiting_stream (or ix_tickets_waiting_appointments) however deep the queue is.
_STREAM_PARTS = (
    (_STREAM_URGENT, "urgent", False),
    (_STREAM_URGENT, "urgent", True),
    (_STREAM_WALK_IN, "walk_in", False),
    (_STREAM_WALK_IN, "remote", False),
    (_STREAM_WALK_IN_VULNERABLE, "walk_in", True),
    (_STREAM_WALK_IN_VULNERABLE, "remote", True),
    (_STREAM_APPOINTMENT, "appointment", False),
    (_STREAM_APPOINTMENT_VULNERABLE, "appointment", True),
)


@functools.cache
def _head_statement(per_stream: int, n_services: int):
    """The heads of every ordering stream of `n_services` services, in one round trip (built once per shape).

    Rows carry their stream type and the part they were read from (a part is cut at `per_stream` rows).
    """
    by_issue = (Ticket.issued_at, Ticket.id)
    parts = []
    for i in range(n_services):
        base = select(*_WAITING_COLUMNS).where(
            Ticket.centre_id == bindparam("centre_id"),
            Ticket.service_code == bindparam(f"service_{i}"),
            Ticket.status == "waiting",
        )
        for stream, source, vulnerable in _STREAM_PARTS:
            parts.append(
                (
                    stream,
                    base.where(Ticket.source == source, Ticket.vulnerable.is_(vulnerable)).order_by(
                        *by_issue
                    ),
                )
            )
        due = base.where(Ticket.source == "appointment").order_by(Ticket.appointment_at, *by_issue)
        parts.append((_STREAM_APPOINTMENT_DUE, due))
    # Each limited part is wrapped in a subquery so SQLite accepts its ORDER BY / LIMIT.
    return union_all(
        *(
            select(
                *query.add_columns(literal(stream).label("stream"), literal(part).label("part"))
                .limit(per_stream)
                .subquery()
                .c
            )
            for part, (stream, query) in enumerate(parts)
        )
    )


# PostgreSQL: one LATERAL index scan per part, planned once (a UNION of one subquery per part costs more to
# plan than to run, and its generic prepared plan is worse still). SQLite keeps the UNION, cheap to plan.
# The parts are the services crossed with _STREAM_PARTS written into the SQL, so the only array sent is the
# services'; part numbers: (service's ordinal - 1) * len(_STREAM_PARTS) + the part's index, and minus the
# service's ordinal for its appointments in slot order.
_STREAM_PARTS_SQL = ", ".join(
    f"({stream}, {index}, '{source}', {str(vulnerable).lower()})"
    for index, (stream, source, vulnerable) in enumerate(_STREAM_PARTS)
)
_HEAD_SQL_POSTGRES = text(
    f"""
    SELECT t.id, t.source, t.issued_at, t.vulnerable, t.appointment_at, t.account_id, t.service_code,
           t.number, p.stream, (s.n - 1) * {len(_STREAM_PARTS)} + p.index
    FROM unnest(CAST(:services AS text[])) WITH ORDINALITY AS s(service, n)
    CROSS JOIN (VALUES {_STREAM_PARTS_SQL}) AS p(stream, index, source, vulnerable)
    CROSS JOIN LATERAL (
        SELECT * FROM tickets
        WHERE centre_id = :centre_id AND status = 'waiting' AND service_code = s.service
          AND source = p.source AND vulnerable = p.vulnerable
        ORDER BY issued_at, id
        LIMIT :per_stream
    ) AS t
    UNION ALL
    SELECT t.id, t.source, t.issued_at, t.vulnerable, t.appointment_at, t.account_id, t.service_code,
           t.number, {_STREAM_APPOINTMENT_DUE}, -s.n
    FROM unnest(CAST(:services AS text[])) WITH ORDINALITY AS s(service, n)
    CROSS JOIN LATERAL (
        SELECT * FROM tickets
        WHERE centre_id = :centre_id AND status = 'waiting' AND service_code = s.service
          AND source = 'appointment'
        ORDER BY appointment_at, issued_at, id
        LIMIT :per_stream
    ) AS t
    """  # noqa: S608 (only this module's constants are formatted in)
).columns(*_WAITING_COLUMNS, literal_column("stream", Integer), literal_column("part", Integer))


# The current ticket of a counter is finished (see _finish_statement) in the statement that reads the
# head, as a data-modifying CTE: one round trip less per call. The head does not see a visitor put back to
# the queue by it (one snapshot), so the finished rows come along (stream _FINISHED) to be candidates too.
_FINISHED = -1
_HEAD_AND_FINISH_SQL_POSTGRES = text(
    f"""
    WITH finished AS (
        UPDATE tickets SET
            status = CASE WHEN status = 'serving' THEN 'done' ELSE 'waiting' END,
            ended_at = CASE WHEN status = 'serving' THEN CAST(:now AS timestamptz) ELSE ended_at END,
            counter_id = CASE WHEN status = 'serving' THEN counter_id END,
            served_by_id = CASE WHEN status = 'serving' THEN served_by_id END
        WHERE counter_id = :desk AND status IN ('called', 'serving')
        RETURNING id, source, issued_at, vulnerable, appointment_at, account_id, service_code, number,
                  status, booking_id
    )
    SELECT h.*, NULL AS status, NULL AS booking_id FROM ({_HEAD_SQL_POSTGRES.element.text}) AS h
    UNION ALL
    SELECT id, source, issued_at, vulnerable, appointment_at, account_id, service_code, number,
           {_FINISHED}, 0, status, booking_id
    FROM finished
    """  # noqa: S608 (only this module's constants are formatted in)
).columns(
    *_WAITING_COLUMNS,
    literal_column("stream", Integer),
    literal_column("part", Integer),
    literal_column("status", String),
    literal_column("booking_id", Integer),
)


def _head_rows(
    centre_id: str, services: list[str], per_stream: int, finish: tuple[int, dt.datetime] | None = None
) -> Iterable[tuple]:
    """Rows of every part's head, and with `finish` (counter, now) the rows that finishing the counter's
    ticket changed: (*_WAITING_COLUMNS, stream, part, status, booking_id)."""
    if _postgres() and finish is not None:
        params = {"desk": finish[0], "now": finish[1], "centre_id": centre_id, "per_stream": per_stream}
        return db.session.execute(_HEAD_AND_FINISH_SQL_POSTGRES, {**params, "services": services})
    finished = []
    if finish is not None:
        finished = [
            (*values, _FINISHED, 0, status, booking_id)
            for *values, status, booking_id in db.session.execute(
                _finish_statement(), {"desk": finish[0], "now": finish[1]}
            )
        ]
    if not services:
        rows = []
    elif _postgres():
        rows = db.session.execute(
            _HEAD_SQL_POSTGRES, {"centre_id": centre_id, "per_stream": per_stream, "services": services}
        )
    else:
        params = {"centre_id": centre_id, **{f"service_{i}": code for i, code in enumerate(services)}}
        rows = db.session.execute(_head_statement(per_stream, len(services)), params)
    return [*((*row, None, None) for row in rows), *finished]


@dataclass(frozen=True, slots=True)
class _Head:
    """The first waiting tickets in call order, and how far down that order they are known to be exact."""

    rows: list[_Waiting]
    keys: list[RankKey]  # each row's rank key at the time the head was read (computed once)
    horizon: tuple | None  # a rank key; tickets ranked after it may have better ones not loaded
    finished: list[tuple[str, str, int | None]] = field(default_factory=list)  # (status, service, booking)

    def safe(self, row: _Waiting, now: dt.datetime, policy: CallPolicy) -> bool:
        return self.horizon is None or rank_key(row.candidate(), now=now, policy=policy) <= self.horizon

    def exact(self) -> list[_Waiting]:
        """The rows known to be the first in call order (a prefix of `rows`)."""
        if self.horizon is None:
            return self.rows
        return [row for row, key in zip(self.rows, self.keys, strict=True) if key <= self.horizon]


def _per_stream(n_services: int) -> int:
    return max(HEAD_MIN_PER_STREAM, min(HEAD_PER_STREAM, math.ceil(HEAD_ROWS / max(1, n_services))))


def _head_of_queue(
    centre_id: str,
    services: Sequence[str],
    *,
    now: dt.datetime,
    per_stream: int | None = None,
    finish_counter: int | None = None,
) -> _Head:
    """The first tickets of every ordering stream, in the policy's call order.

    The policy's minimum over all waiting tickets is the minimum over the streams' heads. A stream cut
    at `per_stream` rows bounds what its unread rows can rank: candidates ranked after that bound (the
    horizon) may be beaten by an unread ticket, so a caller must reload instead of taking them (that
    happens when other counters consumed the whole head while this one was slow).

    With `finish_counter`, that counter's current ticket is finished first, in the same statement
    (`finished` says how); a visitor it puts back to the queue is among the rows.
    """
    policy = call_policy()
    services = sorted(set(services))
    per_stream = per_stream or _per_stream(len(services))
    finish = (finish_counter, now) if finish_counter is not None else None
    by_part: dict[int, tuple[int, list[_Waiting]]] = {}
    rows: dict[int, _Waiting] = {}
    finished = []
    for *values, stream, part, status, booking_id in _head_rows(centre_id, services, per_stream, finish):
        row = _Waiting(*values)
        if stream == _FINISHED:
            finished.append((status, row.service_code, booking_id))
            if status == "waiting" and row.service_code in services:
                rows[row.id] = row  # not in its part: the part was read without it
            continue
        rows[row.id] = row
        by_part.setdefault(part, (stream, []))[1].append(row)
    bounds = []
    for stream, members in by_part.values():
        if len(members) < per_stream:
            continue  # the whole stream is loaded
        if stream == _STREAM_APPOINTMENT_DUE:
            last = max(members, key=lambda r: (r.appointment_at, r.issued_at, r.id))
            if is_due(last.candidate(), now=now, policy=policy):
                bounds.append(rank_key(last.candidate(), now=now, policy=policy))
            # Otherwise unread rows are not due either: their rank is by issue time, bounded below.
        elif stream in (_STREAM_APPOINTMENT, _STREAM_APPOINTMENT_VULNERABLE):
            last = max(members, key=lambda r: (r.issued_at, r.id))
            # Unread rows that are not due rank by (effective) issue time, never before this.
            bounds.append((TIER_REST, effective_time(last.candidate(), policy), last.issued_at, last.id))
        else:
            last = max(members, key=lambda r: (r.issued_at, r.id))
            bounds.append(rank_key(last.candidate(), now=now, policy=policy))
    # The policy's order (order_candidates sorts by rank_key, a total order), each key computed once.
    keyed = sorted(
        ((rank_key(row.candidate(), now=now, policy=policy), row) for row in rows.values()),
        key=lambda pair: pair[0],
    )
    return _Head(
        rows=[row for _, row in keyed],
        keys=[key for key, _ in keyed],
        horizon=min(bounds) if bounds else None,
        finished=finished,
    )


def _in_call_order(rows: Iterable[_Waiting], now: dt.datetime) -> list[_Waiting]:
    by_id = {r.id: r for r in rows}
    ordered = order_candidates((r.candidate() for r in by_id.values()), now=now, policy=call_policy())
    return [by_id[c.id] for c in ordered]


def waiting_in_order(*, centre_id: str, services: Sequence[str], limit: int | None = None) -> list[_Waiting]:
    """Waiting tickets of these services in the order counters will call them."""
    now = clock.now()
    if limit is not None and limit <= _per_stream(len(set(services))):
        exact = _head_of_queue(centre_id, services, now=now).exact()
        if len(exact) >= limit:
            return exact[:limit]
    rows = [_Waiting(*r) for r in db.session.execute(_waiting_query(centre_id, list(services)))]
    ordered = _in_call_order(rows, now)
    return ordered if limit is None else ordered[:limit]


@functools.cache
def _counts_statement():
    return (
        select(Ticket.service_code, func.count())
        .where(Ticket.centre_id == bindparam("centre_id"), Ticket.status == "waiting")
        .group_by(Ticket.service_code)
    )


def _count_waiting(centre_id: str) -> dict[str, int]:
    """Waiting tickets per service at a centre, counted in the database (reads every waiting ticket)."""
    rows = db.session.execute(_counts_statement(), {"centre_id": centre_id})
    return {code: count for code, count in rows}


def _recount_waiting(centre_id: str) -> dict[str, int]:
    """The database's counts, read after a commit in a transaction of their own."""
    try:
        return _count_waiting(centre_id)
    finally:
        db.session.rollback()


def waiting_counts(*, centre_id: str) -> dict[str, int]:
    """Waiting tickets per service at a centre, as the screens show them.

    Kept in Redis and moved by each change after its commit (counting 40,000 waiting tickets on every
    call is what made call-next slow); counted in the database again when Redis has none, which is at
    least every `live.WAITING_COUNTS_SECONDS`.
    """
    counts = live.stored_waiting_counts(centre_id)
    if counts is None:
        counts = _count_waiting(centre_id)
        live.store_waiting_counts(centre_id, counts)
    return counts


def open_sessions(*, centre_id: str) -> list[CounterSession]:
    """The counters open right now at a centre."""
    return list(
        db.session.scalars(
            select(CounterSession)
            .join(Counter, Counter.id == CounterSession.counter_id)
            .where(Counter.centre_id == centre_id, CounterSession.closed_at.is_(None))
        )
    )


def average_service_minutes(*, centre_id: str, service_code: str) -> float:
    """Rolling mean of the last finished visits of a service at a centre (the catalogue's figure if none)."""
    samples = current_app.config["QUEUE_SERVICE_TIME_SAMPLES"]
    rows = db.session.execute(
        select(Ticket.started_at, Ticket.ended_at)
        .where(
            Ticket.centre_id == centre_id,
            Ticket.service_code == service_code,
            Ticket.status == "done",
            Ticket.started_at.is_not(None),
            Ticket.ended_at.is_not(None),
        )
        .order_by(Ticket.ended_at.desc())
        .limit(samples)
    ).all()
    durations = [(end - start).total_seconds() / 60 for start, end in rows if end >= start]
    if durations:
        return max(0.5, sum(durations) / len(durations))
    service = db.session.get(Service, service_code)
    return float(service.avg_service_minutes if service else 10)


def with_position(ticket: Ticket | TicketAnswer) -> Ticket | TicketAnswer:
    """Attach `position` (1 = next) and `estimated_wait_minutes` to a ticket for its answer."""
    ticket.position = None
    ticket.estimated_wait_minutes = None
    if ticket.status in ("called", "serving"):
        ticket.position, ticket.estimated_wait_minutes = 0, 0
    elif ticket.status == "waiting":
        order = waiting_in_order(centre_id=ticket.centre_id, services=[ticket.service_code])
        ahead = next((i for i, row in enumerate(order) if row.id == ticket.id), len(order))
        counters = sum(
            1 for s in open_sessions(centre_id=ticket.centre_id) if ticket.service_code in (s.services or [])
        )
        average = average_service_minutes(centre_id=ticket.centre_id, service_code=ticket.service_code)
        ticket.position = ahead + 1
        ticket.estimated_wait_minutes = math.ceil(ahead * average / max(1, counters))
    return ticket


def transferred_to_id(ticket: Ticket) -> int | None:
    """The copy a transfer made of this ticket, if any."""
    return db.session.scalar(select(Ticket.id).where(Ticket.transferred_from_id == ticket.id))


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


def _counter_payload(counter: Counter | None) -> dict[str, Any] | None:
    if counter is None:
        return None
    return {
        "id": counter.id,
        "number": counter.number,
        "name_ar": counter.name_ar,
        "name_en": counter.name_en,
    }


def call_payload(ticket: Ticket | TicketAnswer) -> dict[str, Any]:
    """What a screen shows for a call: number → counter."""
    return {
        "ticket_id": ticket.id,
        "number": ticket.number,
        "service": ticket.service_code,
        "counter": ticket.counter if isinstance(ticket, TicketAnswer) else _counter_payload(ticket.counter),
        "called_at": ticket.called_at.isoformat() if ticket.called_at else None,
        "recall_count": ticket.recall_count,
    }


def queue_snapshot(*, centre_id: str) -> dict[str, Any]:
    """The public state of a centre's queue: waiting per service, the latest calls, counters open."""
    centre = get_centre(centre_id)
    counts = waiting_counts(centre_id=centre_id)
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


# ---------------------------------------------------------------------------------------- counters


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
    if lock:
        query = query.with_for_update()
    return db.session.scalar(query)


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
        "counter": _counter_payload(counter),
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


def _current_ticket(counter_id: int, *, lock: bool = False) -> Ticket | None:
    query = (
        select(Ticket)
        .where(Ticket.counter_id == counter_id, _literal_in(Ticket.status, "called", "serving"))
        .order_by(Ticket.called_at.desc())
        .limit(1)
    )
    return db.session.scalar(query.with_for_update() if lock else query)


@dataclass(slots=True)
class TicketAnswer:
    """A ticket as the API answers it, read by the statement that changed it (nothing to load after the
    commit): the columns of `Ticket`, its centre's zone and its counter."""

    id: int
    centre_id: str
    service_code: str
    number: str
    seq: int | None
    local_date: dt.date
    source: str
    priority: int
    vulnerable: bool
    status: str
    issued_at: dt.datetime
    appointment_at: dt.datetime | None
    called_at: dt.datetime | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    counter_id: int | None
    served_by_id: int | None
    recall_count: int
    account_id: int | None
    booking_id: int | None
    urgent_request_id: int | None
    transferred_from_id: int | None
    rating: int | None
    rating_comment: str | None
    rated_at: dt.datetime | None
    timezone: str
    counter: dict[str, Any] | None
    position: int | None = None
    estimated_wait_minutes: int | None = None


_COUNTER_FIELDS = ("number", "name_ar", "name_en")


@functools.cache
def _answer_columns() -> tuple:
    """RETURNING columns for a `TicketAnswer`: the ticket's, its centre's zone, its counter's names.

    SQLite gets the ticket's columns only: SQLAlchemy writes its RETURNING without table names, which
    would leave the subqueries' names to SQLite's scoping rules (its answer is completed by `_answer`).
    """
    centre, counter = Centre.__table__, Counter.__table__

    def scalar(column, where):
        return select(column).where(where).correlate(_TICKETS).scalar_subquery()

    return (
        *_TICKETS.c,
        scalar(centre.c.timezone, centre.c.id == _TICKETS.c.centre_id).label("timezone"),
        *(
            scalar(counter.c[name], counter.c.id == _TICKETS.c.counter_id).label(f"counter_{name}")
            for name in _COUNTER_FIELDS
        ),
    )


def _answer(row: Row[Any]) -> TicketAnswer:
    values = dict(row._mapping)
    if "timezone" not in values:
        centre, counter = Centre.__table__, Counter.__table__
        names = [counter.c[name].label(f"counter_{name}") for name in _COUNTER_FIELDS]
        extra = db.session.execute(
            select(centre.c.timezone, *names)
            .select_from(centre.outerjoin(counter, counter.c.id == values["counter_id"]))
            .where(centre.c.id == values["centre_id"])
        ).one()
        values.update(extra._mapping)
    counter_of = None
    if values["counter_id"] is not None:
        counter_of = {
            "id": values["counter_id"],
            **{name: values[f"counter_{name}"] for name in _COUNTER_FIELDS},
        }
    return TicketAnswer(
        **{column.name: values[column.name] for column in _TICKETS.c},
        timezone=values["timezone"],
        counter=counter_of,
    )


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


def _lock_open_counter(counter_id: int, principal: Principal) -> tuple[str, list[str]]:
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


@functools.cache
def _finish_statement():
    """Before the next call: a visit being served is done; a called visitor who never came forward goes
    back to the queue with their issue time (so a double click never skips anyone; no-show is explicit).

    One UPDATE (on PostgreSQL, part of the head's statement): a start or complete clicked at the same
    moment is applied first and the row re-checked, never overwritten. Built once.
    """
    serving = _TICKETS.c.status == literal_column("'serving'")
    return (
        update(_TICKETS)
        .where(
            _TICKETS.c.counter_id == bindparam("desk"), _literal_in(_TICKETS.c.status, "called", "serving")
        )
        .values(
            status=case((serving, literal_column("'done'")), else_=literal_column("'waiting'")),
            ended_at=case((serving, bindparam("now", type_=UTCDateTime)), else_=_TICKETS.c.ended_at),
            counter_id=case((serving, _TICKETS.c.counter_id), else_=null()),
            served_by_id=case((serving, _TICKETS.c.served_by_id), else_=null()),
        )
        .returning(
            *(_TICKETS.c[column.key] for column in _WAITING_COLUMNS), _TICKETS.c.status, _TICKETS.c.booking_id
        )
    )


def _settle_finished(finished: Sequence[tuple[str, str, int | None]]) -> tuple[bool, dict[str, int]]:
    """After finishing a counter's ticket (in the head's statement): its booking is completed if the visit
    was served; returns whether a ticket was finished, and how the waiting lists changed."""
    delta: dict[str, int] = {}
    for status, service_code, booking_id in finished:
        if status == "waiting":
            delta[service_code] = delta.get(service_code, 0) + 1
        elif booking_id is not None:
            from booking import services as booking

            booking.complete_booking(booking_id=booking_id)
    return bool(finished), delta


def _called_values() -> dict[str, Any]:
    return {
        "status": literal_column("'called'"),
        "counter_id": bindparam("desk"),
        "served_by_id": bindparam("clerk"),
        "called_at": bindparam("now", type_=UTCDateTime),
    }


@functools.cache
def _claim_statement():
    """Waiting → called for one ticket, returning its answer (SQLite, where writers are serialised)."""
    return (
        update(_TICKETS)
        .where(_TICKETS.c.id == bindparam("ticket"), _TICKETS.c.status == literal_column("'waiting'"))
        .values(**_called_values())
        .returning(*_TICKETS.c)
    )


@functools.cache
def _claim_first_statement(skip_locked: bool):
    """PostgreSQL: waiting → called for the first of the candidates (in the given order) that is still
    waiting and that no other counter is taking right now, returning its answer, in one statement.

    With `skip_locked`, a row another counter is claiming is passed over, not waited for; without it, the
    claim waits and re-checks the row (it is usually called by then, and the next one is taken).
    """
    probe = _TICKETS.alias("probe")
    wanted = (
        func.unnest(bindparam("ids", type_=postgresql.ARRAY(Integer)))
        .table_valued("id", with_ordinality="ord")
        .render_derived(name="wanted")
    )
    first = (
        select(probe.c.id)
        .join_from(wanted, probe, probe.c.id == wanted.c.id)
        .where(probe.c.status == literal_column("'waiting'"))
        .order_by(wanted.c.ord)
        .limit(1)
        .with_for_update(of=probe, skip_locked=skip_locked)
        .scalar_subquery()
    )
    return (
        update(_TICKETS)
        .where(_TICKETS.c.id == first, _TICKETS.c.status == literal_column("'waiting'"))
        .values(**_called_values())
        .returning(*_answer_columns())
    )


def _claim(
    candidates: Sequence[_Waiting], *, counter_id: int, clerk_id: int, now: dt.datetime, skip_locked: bool
) -> TicketAnswer | None:
    """Take the first candidate still waiting for a counter, or None if other counters have them all."""
    params: dict[str, Any] = {"desk": counter_id, "clerk": clerk_id, "now": now}
    if _postgres():
        row = db.session.execute(
            _claim_first_statement(skip_locked), {**params, "ids": [c.id for c in candidates]}
        ).first()
        return _answer(row) if row is not None else None
    for candidate in candidates:
        row = db.session.execute(_claim_statement(), {**params, "ticket": candidate.id}).first()
        if row is not None:
            return _answer(row)
    return None


def call_next_ticket(*, counter_id: int, principal: Principal) -> TicketAnswer | None:
    """Call the next ticket by the policy among the services the counter serves; None if nobody waits.

    A ticket still being served at this counter is completed first; one called but never started goes
    back to the queue first (keeping its place), so it is usually called again. On PostgreSQL that is
    three statements in one transaction: lock the counter's session; finish its ticket and read the head
    of the queue; claim the first candidate nobody else is taking.
    """
    centre_id, services = _lock_open_counter(counter_id, principal)
    finished, waiting_delta, ticket, head = False, {}, None, None
    for attempt in range(CLAIM_ATTEMPTS):
        now = clock.now()
        # The first read also finishes the counter's current ticket (the next ones only read).
        head = _head_of_queue(centre_id, services, now=now, finish_counter=None if attempt else counter_id)
        if not attempt:
            finished, waiting_delta = _settle_finished(head.finished)
        if not head.rows:
            break
        # Past the horizon other counters used up what this snapshot knew: read the queue again then.
        candidates = head.exact()
        # After a few rounds of finding every head ticket taken, wait for locks instead of skipping them.
        ticket = _claim(
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


def _next_after(ticket: TicketAnswer, head: _Head) -> list[_Waiting] | None:
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
    _notify(
        account_id=ticket.account_id,
        kind="ticket_called",
        params={
            "number": ticket.number,
            "counter": counter_number,
            "ticket_id": ticket.id,
            "centre_id": ticket.centre_id,
            "service_code": ticket.service_code,
        },
        dedupe_key=f"ticket_called:{ticket.id}:{ticket.recall_count}",
    )


def _tell_turn_near(ticket: Ticket | TicketAnswer, order: list[_Waiting] | None = None) -> None:
    """'Your turn is near' to the next few waiting for the called ticket's service (`order`: those next,
    in call order, when the caller knows them), in the caller's transaction."""
    near = current_app.config["TURN_NEAR_AHEAD"]
    if near <= 0:
        return
    if order is None:
        order = _head_of_queue(ticket.centre_id, [ticket.service_code], now=clock.now()).exact()
    for ahead, row in enumerate(order[: near + 1]):
        if row.account_id is None:
            continue
        _notify(
            account_id=row.account_id,
            kind="turn_near",
            params={
                "number": row.number,
                "ahead": ahead,
                "ticket_id": row.id,
                "centre_id": ticket.centre_id,
                "service_code": row.service_code,
            },
            dedupe_key=f"turn_near:{row.id}",
        )


def _staff_ticket(ticket_id: int, principal: Principal, *, lock: bool = True) -> Ticket:
    query = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        query = query.with_for_update()
    ticket = db.session.scalar(query)
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
    """The visitor arrived at the counter: service starts."""
    ticket = _staff_ticket(ticket_id, principal)
    _require_status(ticket, "called")
    ticket.status = "serving"
    ticket.started_at = clock.now()
    _commit_ticket_change(ticket.centre_id)
    return ticket


@functools.cache
def _complete_statement(any_centre: bool, postgres: bool):
    """Called or serving → done, returning its answer (built once per kind of caller and database)."""
    now = bindparam("now", type_=UTCDateTime)
    statement = update(_TICKETS).where(
        _TICKETS.c.id == bindparam("ticket"), _literal_in(_TICKETS.c.status, "called", "serving")
    )
    if not any_centre:
        statement = statement.where(_TICKETS.c.centre_id == bindparam("centre"))
    return statement.values(
        status=literal_column("'done'"), ended_at=now, started_at=func.coalesce(_TICKETS.c.started_at, now)
    ).returning(*(_answer_columns() if postgres else _TICKETS.c))


def complete_ticket(*, ticket_id: int, principal: Principal) -> TicketAnswer:
    """The visit is done (a called ticket counts as started now); its booking is completed too."""
    statement = _complete_statement(principal.role == "admin", _postgres())
    params = {"ticket": ticket_id, "centre": principal.centre_id, "now": clock.now()}
    row = db.session.execute(statement, params).first()
    if row is None:
        # Unknown, elsewhere, or not called or serving: say which (404, 403, 409), with the row locked. If
        # it was called meanwhile, it is completed now.
        _require_status(_staff_ticket(ticket_id, principal), "called", "serving")
        row = db.session.execute(statement, params).one()
    ticket = _answer(row)
    if ticket.booking_id is not None:
        from booking import services as booking

        booking.complete_booking(booking_id=ticket.booking_id)
    _commit_ticket_change(ticket.centre_id)
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
    _offered(ticket.centre_id, service_code)
    now = clock.now()
    ticket.status = "transferred"
    ticket.ended_at = now
    copy = Ticket(
        centre_id=ticket.centre_id,
        service_code=service_code,
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


# ------------------------------------------------------------------------------- urgent passports


def _approved_recently(account_id: int, now: dt.datetime) -> int:
    window = dt.timedelta(days=current_app.config["URGENT_WINDOW_DAYS"])
    return db.session.scalar(
        select(func.count())
        .select_from(UrgentRequest)
        .where(
            UrgentRequest.account_id == account_id,
            UrgentRequest.status.in_(("approved", "used")),
            UrgentRequest.decided_at >= now - window,
        )
    )


def create_urgent_request(
    *,
    account_id: int,
    centre_id: str,
    service_code: str,
    reason_code: str,
    travel_date: dt.date,
    details: str,
) -> UrgentRequest:
    """A citizen asks for an urgent passport: one pending at a time, a yearly cap on approvals."""
    centre = get_centre(centre_id)
    service = _offered(centre_id, service_code)
    if service.group != URGENT_SERVICE_GROUP:
        raise UrgentNotAllowed(details={"service": service_code})
    if travel_date < centre_today(centre):
        raise InvalidDate(details={"travel_date": travel_date.isoformat()})
    now = clock.now()
    cap = current_app.config["URGENT_MAX_APPROVED"]
    if _approved_recently(account_id, now) >= cap:
        raise UrgentQuotaExceeded(details={"limit": cap, "days": current_app.config["URGENT_WINDOW_DAYS"]})
    request = UrgentRequest(
        account_id=account_id,
        centre_id=centre_id,
        service_code=service_code,
        reason_code=reason_code,
        travel_date=travel_date,
        details=details,
        status="pending",
        created_at=now,
    )
    db.session.add(request)
    try:
        db.session.commit()
    except IntegrityError:
        # The partial unique index holds "one pending per citizen", whatever the concurrency.
        db.session.rollback()
        raise UrgentRequestPending() from None
    return request


def list_my_urgent_requests(*, account_id: int):
    """A citizen's urgent requests, newest first (a select for pagination)."""
    return (
        select(UrgentRequest).where(UrgentRequest.account_id == account_id).order_by(UrgentRequest.id.desc())
    )


def get_my_urgent_request(*, request_id: int, account_id: int) -> UrgentRequest:
    """One of the citizen's urgent requests (anyone else's is 404)."""
    request = db.session.get(UrgentRequest, request_id)
    if request is None or request.account_id != account_id:
        raise NotFound()
    return request


def list_centre_urgent_requests(*, centre_id: str, status: str | None, principal: Principal):
    """A centre's urgent requests for its supervisors, oldest pending first (a select for pagination)."""
    get_centre(centre_id)
    require_centre(principal, centre_id)
    query = select(UrgentRequest).where(UrgentRequest.centre_id == centre_id)
    if status:
        query = query.where(UrgentRequest.status == status)
    return query.order_by(UrgentRequest.created_at, UrgentRequest.id)


def _pending_request_for(request_id: int, principal: Principal) -> UrgentRequest:
    request = db.session.scalar(select(UrgentRequest).where(UrgentRequest.id == request_id).with_for_update())
    if request is None:
        raise NotFound()
    require_centre(principal, request.centre_id)
    if request.status != "pending":
        db.session.rollback()
        raise UrgentAlreadyDecided(details={"status": request.status})
    return request


def _decide(
    request: UrgentRequest, *, status: str, principal: Principal, now: dt.datetime, **values: Any
) -> None:
    """Move a pending request to its decision; the WHERE makes two supervisors' clicks count once."""
    decided = db.session.execute(
        update(UrgentRequest)
        .where(UrgentRequest.id == request.id, UrgentRequest.status == "pending")
        .values(status=status, decided_by=principal.id, decided_at=now, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if decided != 1:
        db.session.rollback()
        raise UrgentAlreadyDecided()


def approve_urgent_request(
    *, request_id: int, local_date: dt.date, note: str | None, principal: Principal
) -> UrgentRequest:
    """A supervisor approves for a date: an urgent booking from that day's reserve, over slot capacity."""
    request = _pending_request_for(request_id, principal)
    centre = get_centre(request.centre_id)
    if local_date < centre_today(centre):
        db.session.rollback()
        raise InvalidDate(details={"date": local_date.isoformat()})
    now = clock.now()
    cap = current_app.config["URGENT_MAX_APPROVED"]
    if _approved_recently(request.account_id, now) >= cap:
        db.session.rollback()
        raise UrgentQuotaExceeded(details={"limit": cap, "days": current_app.config["URGENT_WINDOW_DAYS"]})
    from booking import services as booking

    try:
        created = booking.create_urgent_booking(
            account_id=request.account_id,
            centre_id=request.centre_id,
            service_code=request.service_code,
            local_date=local_date,
        )
    except Exception:
        db.session.rollback()
        raise
    _decide(
        request,
        status="approved",
        principal=principal,
        now=now,
        note=note,
        approved_date=local_date,
        booking_id=created.id,
    )
    _audit(
        actor=principal,
        action="urgent_request.approved",
        subject_type="urgent_request",
        subject_id=request.id,
        centre_id=request.centre_id,
        reason=note,
        details={
            "date": local_date.isoformat(),
            "booking_id": created.id,
            "reference": getattr(created, "reference", None),
        },
    )
    _notify(
        account_id=request.account_id,
        kind="urgent_approved",
        params={
            "centre_id": request.centre_id,
            "service_code": request.service_code,
            "date": local_date.isoformat(),
            "note": note or "",
            "request_id": request.id,
            "reference": getattr(created, "reference", None),
        },
        dedupe_key=f"urgent_decided:{request.id}",
    )
    db.session.commit()
    return db.session.get(UrgentRequest, request.id, populate_existing=True)


def reject_urgent_request(*, request_id: int, note: str, principal: Principal) -> UrgentRequest:
    """A supervisor turns an urgent request down, saying why."""
    request = _pending_request_for(request_id, principal)
    now = clock.now()
    _decide(request, status="rejected", principal=principal, now=now, note=note)
    _audit(
        actor=principal,
        action="urgent_request.rejected",
        subject_type="urgent_request",
        subject_id=request.id,
        centre_id=request.centre_id,
        reason=note,
    )
    _notify(
        account_id=request.account_id,
        kind="urgent_rejected",
        params={
            "centre_id": request.centre_id,
            "service_code": request.service_code,
            "note": note,
            "request_id": request.id,
        },
        dedupe_key=f"urgent_decided:{request.id}",
    )
    db.session.commit()
    return db.session.get(UrgentRequest, request.id, populate_existing=True)


def list_audit_entries(*, centre_id: str, principal: Principal):
    """A centre's audit trail, newest first (a select for pagination)."""
    get_centre(centre_id)
    require_centre(principal, centre_id)
    return select(AuditEntry).where(AuditEntry.centre_id == centre_id).order_by(AuditEntry.id.desc())


# -------------------------------------------------------------------------------------- the day


def closing_instant(centre: Centre, day: dt.date) -> dt.datetime | None:
    """When the centre's last opening interval of a local day ends (None if closed all day)."""
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]
    intervals = (centre.weekly_hours or {}).get(weekday) or []
    ends = [pair[1] for pair in intervals if isinstance(pair, list | tuple) and len(pair) == 2]
    if not ends:
        return None
    hour, minute = (int(part) for part in max(ends).split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=_zone(centre)).astimezone(dt.UTC)


def expire_leftover_tickets(*, centre: Centre) -> int:
    """Expire a centre's tickets still waiting or called from earlier days, and today's after closing."""
    today = centre_today(centre)
    now = clock.now()
    leftover = Ticket.local_date < today
    closing = closing_instant(centre, today)
    if closing is not None and now >= closing:
        # Tickets taken after closing (a late kiosk) stay until tomorrow's run.
        leftover = leftover | ((Ticket.local_date == today) & (Ticket.issued_at <= closing))
    expired = db.session.execute(
        update(Ticket)
        .where(Ticket.centre_id == centre.id, Ticket.status.in_(("waiting", "called")), leftover)
        .values(status="expired", ended_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    closed = db.session.execute(
        update(CounterSession)
        .where(
            CounterSession.closed_at.is_(None),
            CounterSession.opened_at < dt.datetime.combine(today, dt.time(), tzinfo=_zone(centre)),
            CounterSession.counter_id.in_(select(Counter.id).where(Counter.centre_id == centre.id)),
        )
        .values(closed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if expired:
        # Once a day: count again rather than track which services the expired tickets waited for.
        counts = _recount_waiting(centre.id)
        live.store_waiting_counts(centre.id, counts)
        live.publish(centre.id, live.QUEUE_UPDATED, {"waiting": counts, "at": now.isoformat()})
    return (expired or 0) + (closed or 0)


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
            {"waiting": waiting_counts(centre_id=centre_id), "at": now.isoformat()},
        )
    return len(rows)


# ------------------------------------------------------------------------------------------ stats


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _minutes(later: dt.datetime, earlier: dt.datetime) -> float:
    return (later - earlier).total_seconds() / 60


def centre_stats(*, centre_id: str, day: dt.date | None, principal: Principal) -> dict[str, Any]:
    """A centre's figures for a local day.

    Visits are tickets not created by a transfer. Wait = first call − issue, over called visits.
    Service time = end − start over finished tickets. No-show rate = no-shows / (finished + no-shows).
    Percentiles are nearest-rank. Minutes are rounded to 0.1.
    """
    centre = get_centre(centre_id)
    if principal.role not in ("staff", "supervisor", "admin"):
        raise Forbidden()
    require_centre(principal, centre_id)
    day = day or centre_today(centre)
    tickets = db.session.scalars(
        select(Ticket).where(Ticket.centre_id == centre_id, Ticket.local_date == day).order_by(Ticket.id)
    ).all()
    visits = [t for t in tickets if t.transferred_from_id is None]
    by_source = {source: 0 for source in ("walk_in", "appointment", "urgent", "remote")}
    by_status: dict[str, int] = {}
    for t in visits:
        by_source[t.source] += 1
    for t in tickets:
        by_status[t.status] = by_status.get(t.status, 0) + 1
    waits = [_minutes(t.called_at, t.issued_at) for t in visits if t.called_at is not None]
    done = [t for t in tickets if t.status == "done" and t.started_at and t.ended_at]
    service_times = [_minutes(t.ended_at, t.started_at) for t in done]
    no_shows = sum(1 for t in tickets if t.status == "no_show")
    finished = sum(1 for t in tickets if t.status == "done")
    counters = {c.id: c for c in centre.counters}
    per_counter: dict[int, dict[str, Any]] = {}
    for t in tickets:
        if t.counter_id is None or t.called_at is None:
            continue
        entry = per_counter.setdefault(t.counter_id, {"called": 0, "done": 0})
        entry["called"] += 1
        entry["done"] += t.status == "done"
    ratings = [t.rating for t in tickets if t.rating is not None]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "centre_id": centre_id,
        "timezone": centre.timezone,
        "date": day,
        "tickets": len(visits),
        "by_source": by_source,
        "by_status": by_status,
        "wait_minutes": {
            "mean": rounded(_mean(waits)),
            "p90": rounded(_percentile(waits, 0.9)),
            "count": len(waits),
        },
        "service_minutes": {"mean": rounded(_mean(service_times)), "count": len(service_times)},
        "no_show_rate": round(no_shows / (finished + no_shows), 3) if finished + no_shows else None,
        "per_counter": [
            {
                "counter_id": counter_id,
                "number": counters[counter_id].number if counter_id in counters else None,
                "name_ar": counters[counter_id].name_ar if counter_id in counters else None,
                "name_en": counters[counter_id].name_en if counter_id in counters else None,
                **figures,
            }
            for counter_id, figures in sorted(per_counter.items())
        ],
        "rating": {"mean": round(_mean(ratings), 2) if ratings else None, "count": len(ratings)},
    }
