"""The end of a centre's day (leftover tickets expired, counters left open closed) and the day's figures."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from app import clock
from app.catalogue.models import Centre, Counter
from app.catalogue.services import centre_today, get_centre
from app.errors import Forbidden
from app.extensions import db
from app.security import Principal, require_centre

from . import live
from .models import CounterSession, Ticket


def _zone(centre: Centre) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(centre.timezone)


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
