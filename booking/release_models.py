"""Tables of release day (booking/draws.py): draws, their entries, and the waitlists of first-come offerings.

A draw's allocation is durable per entry: the held booking it gives carries `draw_entry_id` under a unique
constraint (booking/models.py), written in the same transaction as the seat it takes, so a draw that died
half-way and runs again never gives an entry, or a seat, twice. Waitlist offers carry `waitlist_entry_id`
the same way.
"""

from __future__ import annotations

import datetime as dt
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
from app.catalogue.models import Centre, Offering
from app.database import UTCDateTime
from app.extensions import db

DRAW_STATUSES = ("open", "drawing", "drawn", "cancelled")
# Draws whose days are not sold first come (the `in_draw` refusal); a drawn one while entrants still wait.
UNDRAWN_STATUSES = ("open", "drawing")
ENTRY_STATUSES = ("entered", "won", "waitlisted", "offered", "lost", "withdrawn", "cancelled")
PARTS_OF_DAY = ("any", "morning", "afternoon")
WAITLIST_STATUSES = ("waiting", "offered", "left", "lapsed", "closed")
# Local hour at which the afternoon begins (a slot starting before it is a morning slot).
AFTERNOON_FROM_HOUR = 12

_WAITING = "status = 'waiting'"


class Draw(db.Model):
    """A lottery over an offering's seats on some local days; the seed stays secret until the draw."""

    __tablename__ = "draws"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'drawing', 'drawn', 'cancelled')", name="status"),
        CheckConstraint("days_to >= days_from", name="days_order"),
        CheckConstraint("entries_close_at > entries_open_at", name="entries_window"),
        CheckConstraint("confirm_hours BETWEEN 1 AND 168", name="confirm_hours_range"),
        Index("ix_draws_offering_id_status", "offering_id", "status"),
        Index("ix_draws_status_entries_close_at", "status", "entries_close_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offerings.id", ondelete="CASCADE"))
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id"))
    service_code: Mapped[str] = mapped_column(String(64))
    service_group: Mapped[str] = mapped_column(String(64))
    days_from: Mapped[dt.date] = mapped_column(Date)
    days_to: Mapped[dt.date] = mapped_column(Date)
    entries_open_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    entries_close_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    confirm_hours: Mapped[int] = mapped_column(Integer, default=24)
    status: Mapped[str] = mapped_column(String(12), default="open")
    # Hex of 32 random bytes; published only once drawn. The commitment is its SHA-256, public from creation.
    seed: Mapped[str] = mapped_column(String(64))
    seed_commitment: Mapped[str] = mapped_column(String(64))
    # The free seats of the draw's days when it closed: [{slot_id, start, part_of_day, seats}] (published).
    seats_snapshot: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # True from the draw until no entrant waits: the draw's days stay off open sale meanwhile.
    waitlist_open: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    drawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    centre: Mapped[Centre] = relationship()
    offering: Mapped[Offering] = relationship()


class DrawEntry(db.Model):
    """One person's entry in one draw (by national id), named in the published result by its token."""

    __tablename__ = "draw_entries"
    __table_args__ = (
        UniqueConstraint("draw_id", "national_id"),
        UniqueConstraint("entry_token"),
        CheckConstraint(
            "status IN ('entered', 'won', 'waitlisted', 'offered', 'lost', 'withdrawn', 'cancelled')",
            name="status",
        ),
        CheckConstraint("part_of_day IN ('any', 'morning', 'afternoon')", name="part_of_day"),
        Index("ix_draw_entries_draw_id_status_rank", "draw_id", "status", "rank"),
        Index("ix_draw_entries_account_id_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    draw_id: Mapped[int] = mapped_column(ForeignKey("draws.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    national_id: Mapped[str] = mapped_column(String(20))
    service_group: Mapped[str] = mapped_column(String(64))
    entry_token: Mapped[str] = mapped_column(String(32))
    part_of_day: Mapped[str] = mapped_column(String(10), default="any")
    status: Mapped[str] = mapped_column(String(12), default="entered")
    # Written when the draw closes: the place in the HMAC order (1 = first) and the seat planned for it.
    rank: Mapped[int | None] = mapped_column(Integer)
    planned_slot_id: Mapped[int | None] = mapped_column(ForeignKey("slots.id"))
    excluded_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    draw: Mapped[Draw] = relationship()


class WaitlistEntry(db.Model):
    """A citizen waiting for a seat of a first-come offering between two local dates."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'offered', 'left', 'lapsed', 'closed')", name="status"),
        CheckConstraint("part_of_day IN ('any', 'morning', 'afternoon')", name="part_of_day"),
        CheckConstraint("date_to >= date_from", name="dates_order"),
        # One waitlist place per citizen and service group, whatever the concurrency.
        Index(
            "uq_waitlist_waiting_per_group",
            "account_id",
            "service_group",
            unique=True,
            postgresql_where=text(_WAITING),
            sqlite_where=text(_WAITING),
        ),
        Index("ix_waitlist_entries_offering_id_status_id", "offering_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    offering_id: Mapped[int] = mapped_column(ForeignKey("offerings.id", ondelete="CASCADE"))
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id"))
    service_code: Mapped[str] = mapped_column(String(64))
    service_group: Mapped[str] = mapped_column(String(64))
    date_from: Mapped[dt.date] = mapped_column(Date)
    date_to: Mapped[dt.date] = mapped_column(Date)
    part_of_day: Mapped[str] = mapped_column(String(10), default="any")
    status: Mapped[str] = mapped_column(String(10), default="waiting")
    closed_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    offered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    centre: Mapped[Centre] = relationship()
