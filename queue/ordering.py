"""Who is called next: the head of each ordering stream read from the database (one round trip), ranked
by the policy (`policy.py`), and the claim by which a counter takes the first candidate nobody else is
taking."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql

from app import clock
from app.database import UTCDateTime
from app.dialect import on_postgres
from app.extensions import db

from .answers import TicketAnswer, answer_columns, ticket_answer
from .models import Ticket
from .policy import (
    TIER_DUE_APPOINTMENT,
    TIER_REST,
    TIER_STARVING,
    TIER_URGENT,
    CallPolicy,
    Candidate,
    RankKey,
    effective_time,
    is_due,
    order_candidates,
    rank_key,
)

# How many tickets of each ordering stream call-next reads: about HEAD_ROWS in all, spread over the streams
# of the counter's services, HEAD_PER_STREAM at most and HEAD_MIN_PER_STREAM at least per stream. At least
# that many are known to be the first in call order, so the true next ticket is among them unless more
# counters are claiming at the very same instant (then it reads again). Every row read is ranked in Python
# on every call: reading 16 per stream of a counter serving 9 services cost more than the rest of the call.
HEAD_PER_STREAM = 16


HEAD_MIN_PER_STREAM = 4


HEAD_ROWS = 48


def call_policy() -> CallPolicy:
    """The call-next ordering knobs from the configuration."""
    cfg = current_app.config
    return CallPolicy(
        vulnerable_bonus=dt.timedelta(minutes=cfg["QUEUE_VULNERABLE_BONUS_MINUTES"]),
        appointment_early=dt.timedelta(minutes=cfg["QUEUE_APPOINTMENT_EARLY_MINUTES"]),
        starvation_bound=dt.timedelta(minutes=cfg["QUEUE_STARVATION_MINUTES"]),
    )


_TICKETS = Ticket.__table__


def literal_in(column: Any, *values: str) -> ColumnElement[bool]:
    """`column IN ('a', …)` with the values written into the SQL, so PostgreSQL can match partial indexes
    (whose predicates name these values) even in a generic plan of a prepared statement."""
    return column.in_([literal_column(f"'{value}'") for value in values])


class WaitingTicket(NamedTuple):
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


# Before the next call, the counter's called ticket goes back to the queue (see _finish_statement), in the
# statement that reads the head, as a data-modifying CTE: one round trip less per call. The head does not see
# a visitor put back to the queue by it (one snapshot), so the finished rows come along (stream _FINISHED)
# to be candidates too; so does a ticket being served there (status 'serving'), which refuses the call: this
# statement runs after the counter's session is locked, so it sees a start that committed meanwhile.
_FINISHED = -1


_HEAD_AND_FINISH_SQL_POSTGRES = text(
    f"""
    WITH finished AS (
        UPDATE tickets SET status = 'waiting', counter_id = NULL, served_by_id = NULL
        WHERE counter_id = :desk AND status = 'called'
        RETURNING id, source, issued_at, vulnerable, appointment_at, account_id, service_code, number,
                  status, booking_id
    )
    SELECT h.*, NULL AS status, NULL AS booking_id FROM ({_HEAD_SQL_POSTGRES.element.text}) AS h
    UNION ALL
    SELECT id, source, issued_at, vulnerable, appointment_at, account_id, service_code, number,
           {_FINISHED}, 0, status, booking_id
    FROM finished
    UNION ALL
    SELECT id, source, issued_at, vulnerable, appointment_at, account_id, service_code, number,
           {_FINISHED}, 0, status, booking_id
    FROM tickets WHERE counter_id = :desk AND status = 'serving'
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
    """Rows of every part's head, and with `finish` (counter, now) the counter's ticket put back to the queue
    (and on PostgreSQL the one it is serving): (*_WAITING_COLUMNS, stream, part, status, booking_id)."""
    if on_postgres() and finish is not None:
        params = {"desk": finish[0], "centre_id": centre_id, "per_stream": per_stream}
        return db.session.execute(_HEAD_AND_FINISH_SQL_POSTGRES, {**params, "services": services})
    finished = []
    if finish is not None:
        finished = [
            (*values, _FINISHED, 0, status, booking_id)
            for *values, status, booking_id in db.session.execute(_finish_statement(), {"desk": finish[0]})
        ]
    if not services:
        rows = []
    elif on_postgres():
        rows = db.session.execute(
            _HEAD_SQL_POSTGRES, {"centre_id": centre_id, "per_stream": per_stream, "services": services}
        )
    else:
        params = {"centre_id": centre_id, **{f"service_{i}": code for i, code in enumerate(services)}}
        rows = db.session.execute(_head_statement(per_stream, len(services)), params)
    return [*((*row, None, None) for row in rows), *finished]


@dataclass(frozen=True, slots=True)
class QueueHead:
    """The first waiting tickets in call order, and how far down that order they are known to be exact."""

    rows: list[WaitingTicket]
    keys: list[RankKey]  # each row's rank key at the time the head was read (computed once)
    horizon: tuple | None  # a rank key; tickets ranked after it may have better ones not loaded
    finished: list[tuple[str, str, int | None]] = field(default_factory=list)  # (status, service, booking)

    def safe(self, row: WaitingTicket, now: dt.datetime, policy: CallPolicy) -> bool:
        return self.horizon is None or rank_key(row.candidate(), now=now, policy=policy) <= self.horizon

    def exact(self) -> list[WaitingTicket]:
        """The rows known to be the first in call order (a prefix of `rows`)."""
        if self.horizon is None:
            return self.rows
        return [row for row, key in zip(self.rows, self.keys, strict=True) if key <= self.horizon]


def _per_stream(n_services: int) -> int:
    return max(HEAD_MIN_PER_STREAM, min(HEAD_PER_STREAM, math.ceil(HEAD_ROWS / max(1, n_services))))


def head_of_queue(
    centre_id: str,
    services: Sequence[str],
    *,
    now: dt.datetime,
    per_stream: int | None = None,
    finish_counter: int | None = None,
) -> QueueHead:
    """The first tickets of every ordering stream, in the policy's call order.

    The policy's minimum over all waiting tickets is the minimum over the streams' heads. A stream cut
    at `per_stream` rows bounds what its unread rows can rank: candidates ranked after that bound (the
    horizon) may be beaten by an unread ticket, so a caller must reload instead of taking them (that
    happens when other counters consumed the whole head while this one was slow).

    With `finish_counter`, that counter's called ticket goes back to the queue first, in the same statement,
    and is among the rows; `finished` lists it (status `waiting`) and a ticket being served there (status
    `serving`, untouched: the caller refuses to call).
    """
    policy = call_policy()
    services = sorted(set(services))
    per_stream = per_stream or _per_stream(len(services))
    finish = (finish_counter, now) if finish_counter is not None else None
    by_part: dict[int, tuple[int, list[WaitingTicket]]] = {}
    rows: dict[int, WaitingTicket] = {}
    finished = []
    for *values, stream, part, status, booking_id in _head_rows(centre_id, services, per_stream, finish):
        row = WaitingTicket(*values)
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
    return QueueHead(
        rows=[row for _, row in keyed],
        keys=[key for key, _ in keyed],
        horizon=min(bounds) if bounds else None,
        finished=finished,
    )


def _in_call_order(rows: Iterable[WaitingTicket], now: dt.datetime) -> list[WaitingTicket]:
    by_id = {r.id: r for r in rows}
    ordered = order_candidates((r.candidate() for r in by_id.values()), now=now, policy=call_policy())
    return [by_id[c.id] for c in ordered]


def waiting_in_order(
    *, centre_id: str, services: Sequence[str], limit: int | None = None
) -> list[WaitingTicket]:
    """Waiting tickets of these services in the order counters will call them."""
    now = clock.now()
    if limit is not None and limit <= _per_stream(len(set(services))):
        exact = head_of_queue(centre_id, services, now=now).exact()
        if len(exact) >= limit:
            return exact[:limit]
    rows = [WaitingTicket(*r) for r in db.session.execute(_waiting_query(centre_id, list(services)))]
    ordered = _in_call_order(rows, now)
    return ordered if limit is None else ordered[:limit]


def _before(x: Any, y: Any, ident: Any, names: tuple[str, str, str]) -> ColumnElement[bool]:
    """SQL: the triple (x, y, id) sorts before the bound values named `names`, written out (no row values,
    no datetime arithmetic on columns: the same on SQLite and PostgreSQL)."""
    a, b, i = (bindparam(name) for name in names)
    return or_(x < a, and_(x == a, or_(y < b, and_(y == b, ident < i))))


@functools.cache
def _ahead_statement(tier: int):
    """SQL: how many waiting tickets of a service rank before a ticket of rank tier `tier` (whose key's parts
    are bound as `first`, `second`, `ident`), and the people they carry. The policy's tiers as comparisons of
    columns with bound values (`starving_from` = now − starvation bound, `due_from` = now + the early
    window, `shifted` = `first` + the vulnerable bonus; `ahead_of` binds them):

    - urgent, by issue time;
    - walk-in or remote issued at least `starvation_bound` ago (starving), by issue time;
    - appointments due (slot start minus `appointment_early` reached), by slot start, then issue time;
    - the rest by issue time, a vulnerable visitor's counted `vulnerable_bonus` earlier.

    Ties go to issue time, then id, as in `rank_key`. Built once per tier (a statement rebuilt per request
    costs more to key for SQLAlchemy's cache than to run). tests/ticketing/test_position.py holds it equal
    to the policy's order for random queues."""
    t = Ticket
    return select(func.count(), func.coalesce(func.sum(t.party_size), 0)).where(*ahead_filter(tier))


def _ranked_before(tier: int) -> ColumnElement[bool]:
    """Waiting tickets ranked before a ticket of tier `tier` (see `_ahead_statement`)."""
    t = Ticket
    starving_from, due_from = (
        bindparam("starving_from", type_=UTCDateTime()),
        bindparam("due_from", type_=UTCDateTime()),
    )
    urgent = t.source == "urgent"
    starving = and_(literal_in(t.source, "walk_in", "remote"), t.issued_at <= starving_from)
    due = and_(t.source == "appointment", t.appointment_at.is_not(None), t.appointment_at <= due_from)
    rest = or_(
        and_(literal_in(t.source, "walk_in", "remote"), t.issued_at > starving_from),
        and_(t.source == "appointment", or_(t.appointment_at.is_(None), t.appointment_at > due_from)),
    )
    key = ("first", "second", "ident")
    by_issue = _before(t.issued_at, t.issued_at, t.id, key)
    if tier == TIER_URGENT:
        in_tier = and_(urgent, by_issue)
    elif tier == TIER_STARVING:
        in_tier = and_(starving, by_issue)
    elif tier == TIER_DUE_APPOINTMENT:
        in_tier = and_(due, _before(t.appointment_at, t.issued_at, t.id, key))
    else:
        # issued_at - bonus sorts before `first` when issued_at sorts before `first` + bonus.
        in_tier = and_(
            rest,
            or_(
                and_(t.vulnerable.is_(False), by_issue),
                and_(
                    t.vulnerable.is_(True),
                    _before(t.issued_at, t.issued_at, t.id, ("shifted", "second", "ident")),
                ),
            ),
        )
    earlier = [
        cond
        for level, cond in ((TIER_URGENT, urgent), (TIER_STARVING, starving), (TIER_DUE_APPOINTMENT, due))
        if level < tier
    ]
    return or_(*earlier, in_tier)


@functools.cache
def ahead_filter(tier: int) -> tuple[ColumnElement[bool], ...]:
    """The WHERE clause of `_ahead_statement` (tickets ranked before one of tier `tier`, parameters as
    `ahead_params` binds them), for statements that count them beside other figures (built once per tier)."""
    t = Ticket
    return (
        t.centre_id == bindparam("centre_id"),
        t.service_code == bindparam("service_code"),
        t.status == "waiting",
        t.id != bindparam("ident"),
        _ranked_before(tier),
    )


def ahead_params(ticket: Any, *, now: dt.datetime | None = None) -> tuple[int, dict[str, Any]]:
    """The ticket's rank tier and the values `ahead_filter(tier)` binds."""
    now = now or clock.now()
    policy = call_policy()
    tier, first, second, ident = rank_key(
        Candidate(ticket.id, ticket.source, ticket.issued_at, ticket.vulnerable, ticket.appointment_at),
        now=now,
        policy=policy,
    )
    return tier, {
        "centre_id": ticket.centre_id,
        "service_code": ticket.service_code,
        "starving_from": now - policy.starvation_bound,
        "due_from": now + policy.appointment_early,
        "first": first,
        "second": second,
        "ident": ident,
        "shifted": first + policy.vulnerable_bonus,
    }


def ahead_of(ticket: Any, *, now: dt.datetime | None = None) -> tuple[int, int]:
    """How many waiting tickets of the ticket's current service are called before it, and how many people
    they carry (a family's ticket counts each of them): one aggregate in the database, whatever the depth."""
    tier, params = ahead_params(ticket, now=now)
    tickets, people = db.session.execute(_ahead_statement(tier), params).one()
    return int(tickets), int(people)


@functools.cache
def _finish_statement():
    """Before the next call, a called visitor who never came forward goes back to the queue with their issue
    time (so a double click never skips anyone; no-show is explicit). A visit being served is not touched:
    the call is refused until it is completed.

    One UPDATE (on PostgreSQL, part of the head's statement): a start or complete clicked at the same
    moment is applied first and the row re-checked, never overwritten. Built once.
    """
    return (
        update(_TICKETS)
        .where(_TICKETS.c.counter_id == bindparam("desk"), _TICKETS.c.status == literal_column("'called'"))
        .values(status=literal_column("'waiting'"), counter_id=null(), served_by_id=null())
        .returning(
            *(_TICKETS.c[column.key] for column in _WAITING_COLUMNS), _TICKETS.c.status, _TICKETS.c.booking_id
        )
    )


def _called_values() -> dict[str, Any]:
    return {
        "status": literal_column("'called'"),
        "counter_id": bindparam("desk"),
        "served_by_id": bindparam("clerk"),
        "called_at": bindparam("now", type_=UTCDateTime),
    }


@functools.cache
def _claim_statement():
    """Waiting → called for one ticket still in the stream it was read from, returning its answer (SQLite,
    where writers are serialised)."""
    return (
        update(_TICKETS)
        .where(
            _TICKETS.c.id == bindparam("ticket"),
            _TICKETS.c.status == literal_column("'waiting'"),
            _TICKETS.c.service_code == bindparam("service"),
        )
        .values(**_called_values())
        .returning(*_TICKETS.c)
    )


@functools.cache
def _claim_first_statement(skip_locked: bool):
    """PostgreSQL: waiting → called for the first of the candidates (in the given order) that is still
    waiting in the service stream it was read from and that no other counter is taking right now, returning
    its answer, in one statement. (A ticket of several services moves to its next service's stream when one
    is done: a counter that read it in the old stream, and may not serve the new one, must not take it.)

    With `skip_locked`, a row another counter is claiming is passed over, not waited for; without it, the
    claim waits and re-checks the row (it is usually called by then, and the next one is taken).
    """
    probe = _TICKETS.alias("probe")
    wanted = (
        func.unnest(
            bindparam("ids", type_=postgresql.ARRAY(Integer)),
            bindparam("streams", type_=postgresql.ARRAY(String)),
        )
        .table_valued("id", "service", with_ordinality="ord")
        .render_derived(name="wanted")
    )
    first = (
        select(probe.c.id)
        .join_from(wanted, probe, probe.c.id == wanted.c.id)
        .where(probe.c.status == literal_column("'waiting'"), probe.c.service_code == wanted.c.service)
        .order_by(wanted.c.ord)
        .limit(1)
        .with_for_update(of=probe, skip_locked=skip_locked)
        .scalar_subquery()
    )
    return (
        update(_TICKETS)
        .where(
            _TICKETS.c.id == first,
            _TICKETS.c.status == literal_column("'waiting'"),
            _TICKETS.c.service_code == any_(bindparam("streams", type_=postgresql.ARRAY(String))),
        )
        .values(**_called_values())
        .returning(*answer_columns())
    )


def claim_first(
    candidates: Sequence[WaitingTicket],
    *,
    counter_id: int,
    clerk_id: int,
    now: dt.datetime,
    skip_locked: bool,
) -> TicketAnswer | None:
    """Take the first candidate still waiting for a counter, or None if other counters have them all."""
    params: dict[str, Any] = {"desk": counter_id, "clerk": clerk_id, "now": now}
    if on_postgres():
        row = db.session.execute(
            _claim_first_statement(skip_locked),
            {**params, "ids": [c.id for c in candidates], "streams": [c.service_code for c in candidates]},
        ).first()
        return ticket_answer(row) if row is not None else None
    for candidate in candidates:
        row = db.session.execute(
            _claim_statement(), {**params, "ticket": candidate.id, "service": candidate.service_code}
        ).first()
        if row is not None:
            return ticket_answer(row)
    return None
