"""The end of a centre's day (leftover tickets expired, counters left open closed) and the day's figures."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from app import clock
from app.catalogue.models import Centre, Counter, Service
from app.catalogue.services import centre_today, get_centre, opening_intervals
from app.errors import Forbidden
from app.extensions import db
from app.security import Principal, require_centre

from . import live
from .counters import counter_figures
from .models import CounterSession, Ticket, TicketService


def _zone(centre: Centre) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(centre.timezone)


def closing_instant(centre: Centre, day: dt.date) -> dt.datetime | None:
    """When the centre's last opening interval of a local day ends (None if closed all day)."""
    intervals = opening_intervals(centre, day)
    return max(end for _, end in intervals) if intervals else None


def expire_leftover_tickets(*, centre: Centre) -> int:
    """Close of day: expire a centre's tickets still waiting or called from earlier days, and today's once
    the centre has closed (no ticket is issued while it is closed); close counters left open overnight."""
    today = centre_today(centre)
    now = clock.now()
    leftover = Ticket.local_date < today
    closing = closing_instant(centre, today)
    if closing is not None and now >= closing:
        leftover = Ticket.local_date <= today
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
        .values(closed_at=now, paused_at=None, pause_reason=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if expired:
        # Once a day: count again rather than track which services the expired tickets waited for.
        counts = live.recount_waiting(centre.id)
        live.store_waiting_counts(centre.id, counts)
        live.publish(centre.id, live.QUEUE_UPDATED, {"waiting": counts, "at": now.isoformat()})
    return (expired or 0) + (closed or 0)


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
    Percentiles are nearest-rank. Minutes are rounded to 0.1. By hour: visits issued and tickets finished
    (`done`) per centre-local hour, over the day's opening hours and any hour with activity. By service:
    visits issued (in the service they were issued for), finished and still waiting tickets, and the waits of
    its visits. `counters` is the floor right now, `urgent_reserve` the day's urgent passes used of the
    reserve of the centre's offerings.
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
    first_calls = _first_calls(centre_id, day)
    for t in visits:
        # A ticket of several services is called again for each: its wait is to the first call.
        t.first_called_at = first_calls.get(t.id) or t.called_at
    waits = [_minutes(t.first_called_at, t.issued_at) for t in visits if t.first_called_at is not None]
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

    rating = {"mean": round(_mean(ratings), 2) if ratings else None, "count": len(ratings)}
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
        "rating": rating,
        "served": finished,
        "by_hour": _by_hour(centre, day, visits, tickets),
        "by_service": _by_service(centre, visits, tickets, rounded, _served_per_service(centre_id, day)),
        "satisfaction": dict(rating),
        "counters": counter_figures(centre_id=centre_id),
        "urgent_reserve": _urgent_reserve(centre, day),
    }


def _by_hour(
    centre: Centre, day: dt.date, visits: Sequence[Ticket], tickets: Sequence[Ticket]
) -> list[dict[str, int]]:
    """Visits issued and tickets finished per local hour of the day."""
    zone = _zone(centre)
    issued: dict[int, int] = {}
    served: dict[int, int] = {}
    for t in visits:
        hour = t.issued_at.astimezone(zone).hour
        issued[hour] = issued.get(hour, 0) + 1
    for t in tickets:
        if t.status == "done" and t.ended_at is not None:
            ended = t.ended_at.astimezone(zone)
            if ended.date() == day:
                served[ended.hour] = served.get(ended.hour, 0) + 1
    hours = set(issued) | set(served)
    for start, end in opening_intervals(centre, day):
        first = start.astimezone(zone)
        last = (end - dt.timedelta(microseconds=1)).astimezone(zone)
        hours.update(
            range(first.hour if first.date() == day else 0, last.hour + 1 if last.date() == day else 24)
        )
    return [{"hour": h, "issued": issued.get(h, 0), "served": served.get(h, 0)} for h in sorted(hours)]


def _served_per_service(centre_id: str, day: dt.date) -> dict[str, int]:
    """How many times each service was served that day: tickets finished there, and the services served on
    the way by tickets of several services."""
    finished = db.session.execute(
        select(Ticket.service_code, func.count())
        .where(Ticket.centre_id == centre_id, Ticket.local_date == day, Ticket.status == "done")
        .group_by(Ticket.service_code)
    ).all()
    served = dict(finished)
    rows = db.session.execute(
        select(TicketService.service_code, func.count())
        .where(TicketService.centre_id == centre_id, TicketService.local_date == day)
        .group_by(TicketService.service_code)
    ).all()
    for code, count in rows:
        served[code] = served.get(code, 0) + count
    return served


def _first_calls(centre_id: str, day: dt.date) -> dict[int, dt.datetime]:
    """Each ticket's first call among the services it was served for that day."""
    rows = db.session.execute(
        select(TicketService.ticket_id, func.min(TicketService.called_at))
        .where(TicketService.centre_id == centre_id, TicketService.local_date == day)
        .group_by(TicketService.ticket_id)
    ).all()
    return {ticket_id: called for ticket_id, called in rows if called is not None}


def _first_service(ticket: Ticket) -> str:
    return (ticket.services or [ticket.service_code])[0]


def _by_service(
    centre: Centre,
    visits: Sequence[Ticket],
    tickets: Sequence[Ticket],
    rounded,
    served: dict[str, int],
) -> list[dict]:
    """Per service offered (or seen that day): issued (as a visit's first service), tickets finished there,
    times served (`services_served`), waiting, mean and p90 waits in minutes."""
    codes = {o.service_code: o.service for o in centre.offerings if o.active}
    seen = {t.service_code: t.service for t in tickets}
    extra = {code for code in served if code not in codes and code not in seen}
    seen.update({code: db.session.get(Service, code) for code in extra})
    rows = []
    for code in sorted(codes.keys() | seen.keys()):
        service = codes.get(code) or seen[code]
        mine = [t for t in visits if _first_service(t) == code]
        waits = [_minutes(t.first_called_at, t.issued_at) for t in mine if t.first_called_at is not None]
        rows.append(
            {
                "service_code": code,
                "name_ar": service.name_ar,
                "name_en": service.name_en,
                "issued": len(mine),
                "served": sum(1 for t in tickets if t.service_code == code and t.status == "done"),
                "services_served": served.get(code, 0),
                "waiting": sum(1 for t in tickets if t.service_code == code and t.status == "waiting"),
                "mean_wait_minutes": rounded(_mean(waits)),
                "p90_wait_minutes": rounded(_percentile(waits, 0.9)),
                "wait_count": len(waits),
            }
        )
    return rows


def _urgent_reserve(centre: Centre, day: dt.date) -> dict[str, int]:
    """The day's urgent passes used, of the reserve the centre's offerings keep."""
    from booking.services import urgent_reserve_figures

    return urgent_reserve_figures(centre_id=centre.id, local_date=day)
