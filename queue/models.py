"""Tables of the ticket queue and urgent passports: tickets, their numbering, counter sessions, urgent
requests (the audit log they write to is the shell's, `app.audit`)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.catalogue.models import Centre, Counter, Service
from app.database import UTCDateTime
from app.extensions import db

TICKET_SOURCES = ("walk_in", "appointment", "urgent", "remote")
TICKET_STATUSES = ("waiting", "called", "serving", "done", "no_show", "transferred", "cancelled", "expired")
ACTIVE_STATUSES = ("waiting", "called", "serving")
# A visit may take up to this many services on one ticket, served one after another.
MAX_VISIT_SERVICES = 4
# Priority class shown to staff (smaller is served first); the call order itself is policy.py's.
PRIORITY_BY_SOURCE = {"urgent": 0, "appointment": 1, "walk_in": 2, "remote": 2}
URGENT_REASONS = ("medical", "bereavement", "study_or_work", "official_travel", "other")
URGENT_STATUSES = ("pending", "approved", "rejected", "used")


def new_public_id() -> str:
    """An unguessable id for a ticket's public page (the ticket id counts up, so it is not one)."""
    return secrets.token_urlsafe(12)


def _one_service(context) -> list[str]:
    """A ticket made without a list of services is a visit for its one service."""
    return [context.get_current_parameters()["service_code"]]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Ticket(db.Model):
    """A visitor's place in a centre's queue: one to four services served in order, the ticket in the stream
    of one of them at a time (`service_code`, the current service)."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("centre_id", "service_code", "local_date", "seq"),
        CheckConstraint(_in("source", TICKET_SOURCES), name="source"),
        CheckConstraint(_in("status", TICKET_STATUSES), name="status"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint("recall_count >= 0", name="recall_count_nonnegative"),
        CheckConstraint(f"services_left BETWEEN 0 AND {MAX_VISIT_SERVICES - 1}", name="services_left_range"),
        CheckConstraint("party_size >= 1", name="party_size_positive"),
        # The waiting list of a centre's service, in issue order: what counts and positions read.
        Index("ix_tickets_queue", "centre_id", "status", "service_code", "issued_at"),
        # Call-next reads the head of each (service, source, vulnerable) stream in issue order, and of the
        # appointments in slot order: with these partial indexes each head is a short index scan, however
        # deep the queue (without them every call sorted every waiting ticket of the counter's services).
        Index(
            "ix_tickets_waiting_stream",
            "centre_id",
            "service_code",
            "source",
            "vulnerable",
            "issued_at",
            "id",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
        Index(
            "ix_tickets_waiting_appointments",
            "centre_id",
            "service_code",
            "appointment_at",
            "issued_at",
            "id",
            postgresql_where=text("status = 'waiting' AND source = 'appointment'"),
            sqlite_where=text("status = 'waiting' AND source = 'appointment'"),
        ),
        # A counter's current ticket, found by every call-next without reading the counter's whole history.
        Index(
            "ix_tickets_counter_active",
            "counter_id",
            postgresql_where=text("status IN ('called', 'serving')"),
            sqlite_where=text("status IN ('called', 'serving')"),
        ),
        # The ticket's public page is found by this id alone.
        Index("ix_tickets_public_id", "public_id", unique=True),
        # One active remote ticket per citizen: a remote ticket is a promise to come, not a hoard.
        Index(
            "ix_tickets_one_active_remote",
            "account_id",
            unique=True,
            postgresql_where=text("source = 'remote' AND status IN ('waiting', 'called', 'serving')"),
            sqlite_where=text("source = 'remote' AND status IN ('waiting', 'called', 'serving')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), default=new_public_id)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    # The current service: the stream the ticket is in (or was called from).
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"))
    # Every service of the visit, in the order they are served (the current one among them).
    services: Mapped[list[str]] = mapped_column(JSON, default=_one_service)
    # How many services come after the current one: completing it with some left requeues the ticket.
    services_left: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The booking (id and slot) behind each service of `services`, or null for a service without one.
    service_bookings: Mapped[list[dict[str, Any] | None] | None] = mapped_column(JSON)
    # People served on this ticket (a family booking's seats).
    party_size: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    number: Mapped[str] = mapped_column(String(12))
    # The number's place in the sequence of the service that issued it; NULL once the ticket is in another
    # service's stream (a transfer's copy, a requeue), where it keeps the visitor's printed number.
    seq: Mapped[int | None] = mapped_column(Integer)
    local_date: Mapped[dt.date] = mapped_column(Date, index=True)
    source: Mapped[str] = mapped_column(String(12))
    priority: Mapped[int] = mapped_column(Integer, default=2)
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), default="waiting")
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    appointment_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    called_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    counter_id: Mapped[int | None] = mapped_column(ForeignKey("counters.id", ondelete="SET NULL"), index=True)
    served_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    recall_count: Mapped[int] = mapped_column(Integer, default=0)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    booking_id: Mapped[int | None] = mapped_column(Integer, index=True)
    urgent_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("urgent_requests.id", ondelete="SET NULL")
    )
    transferred_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(String(1000))
    rated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    centre: Mapped[Centre] = relationship()
    service: Mapped[Service] = relationship()
    counter: Mapped[Counter | None] = relationship()

    @property
    def timezone(self) -> str:
        return self.centre.timezone

    @property
    def current_service(self) -> str:
        return self.service_code


class TicketService(db.Model):
    """A service of a visit served at a counter before the visit's last one (the last is the ticket's own
    row, `done`): each (ticket, service) is served once."""

    __tablename__ = "ticket_services"
    __table_args__ = (
        UniqueConstraint("ticket_id", "service_code"),
        Index("ix_ticket_services_centre_day", "centre_id", "local_date"),
        Index("ix_ticket_services_service_ended", "centre_id", "service_code", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"))
    local_date: Mapped[dt.date] = mapped_column(Date)
    counter_id: Mapped[int | None] = mapped_column(ForeignKey("counters.id", ondelete="SET NULL"))
    served_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    party_size: Mapped[int] = mapped_column(Integer, default=1)
    called_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TicketSequence(db.Model):
    """The last number handed out per centre, service and centre-local day (allocated by upsert)."""

    __tablename__ = "ticket_sequences"

    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"), primary_key=True)
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"), primary_key=True)
    local_date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)


class CounterSession(db.Model):
    """A clerk at a counter serving a set of services, from opening to closing (paused meanwhile, maybe)."""

    __tablename__ = "counter_sessions"
    __table_args__ = (
        # A counter is held by one clerk, and a clerk holds one counter.
        Index(
            "ix_counter_sessions_one_open_per_counter",
            "counter_id",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
        Index(
            "ix_counter_sessions_one_open_per_clerk",
            "account_id",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    counter_id: Mapped[int] = mapped_column(ForeignKey("counters.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    services: Mapped[list[str]] = mapped_column(JSON, default=_one_service)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A paused counter calls nobody and counts for no wait estimate; NULL while it works.
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    pause_reason: Mapped[str | None] = mapped_column(String(200))


class UrgentRequest(db.Model):
    """A citizen's plea for an urgent passport, decided by a supervisor of the centre."""

    __tablename__ = "urgent_requests"
    __table_args__ = (
        CheckConstraint(_in("status", URGENT_STATUSES), name="status"),
        CheckConstraint(_in("reason_code", URGENT_REASONS), name="reason_code"),
        Index(
            "ix_urgent_requests_one_pending",
            "account_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_urgent_requests_centre_status", "centre_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"))
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"))
    reason_code: Mapped[str] = mapped_column(String(20))
    travel_date: Mapped[dt.date] = mapped_column(Date)
    details: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(1000))
    approved_date: Mapped[dt.date | None] = mapped_column(Date)
    booking_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The dependent (a minor the citizen is a guardian of) the pass is for; None: the citizen themselves.
    applicant_national_id: Mapped[str | None] = mapped_column(String(20))

    centre: Mapped[Centre] = relationship()

    @property
    def timezone(self) -> str:
        return self.centre.timezone
