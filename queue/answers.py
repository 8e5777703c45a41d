"""A ticket as the API answers it, read by the statement that changed it (`UPDATE … RETURNING`), so
nothing is loaded again after the commit."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select

from app.catalogue.models import Centre, Counter
from app.extensions import db

from .models import Ticket

_TICKETS = Ticket.__table__


@dataclass(slots=True)
class TicketAnswer:
    """A ticket as the API answers it, read by the statement that changed it (nothing to load after the
    commit): the columns of `Ticket`, its centre's zone and its counter."""

    id: int
    public_id: str
    centre_id: str
    service_code: str
    services: list[str]
    services_left: int
    service_bookings: list[dict[str, Any] | None] | None
    party_size: int
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
    placed: bool = False  # position and wait set by the statement that issued it (`with_position` keeps them)

    @property
    def current_service(self) -> str:
        return self.service_code


_COUNTER_FIELDS = ("number", "name_ar", "name_en")


@functools.cache
def answer_columns() -> tuple:
    """RETURNING columns for a `TicketAnswer`: the ticket's, its centre's zone, its counter's names.

    SQLite gets the ticket's columns only: SQLAlchemy writes its RETURNING without table names, which
    would leave the subqueries' names to SQLite's scoping rules (its answer is completed by `ticket_answer`).
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


def ticket_answer(row: Row[Any]) -> TicketAnswer:
    """The answer of a row that `answer_columns` (or, on SQLite, the ticket's columns) returned."""
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
