"""Tables of the booking domain: slots, bookings, urgent reserve usage and the anti-abuse records.

Seat accounting: `slots.booked` counts the bookings whose `holds_seat` is true. A seat is freed only by
flipping `holds_seat` from true to false with a conditional UPDATE and, when that UPDATE matched,
decrementing `booked` in the same transaction, so every seat is freed exactly once whatever the
concurrency. A live hold, a confirmed (or checked-in, completed, no-show) booking and a cancelled booking
whose `seat_release_at` has not come yet all hold their seat. A family booking holds `seats` seats (one per
applicant), taken and freed together.

"One active booking per service group" is per person, not per account: each booking lists its applicants
(the citizen and/or their dependents) in `booking_applicants`, whose partial unique index on (national id,
group) while `active` is the rule. A trigger on `bookings.status` (migration 0014, both engines) keeps
`active` equal to "held or confirmed, regular", whichever statement changes the status.
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

BOOKING_STATUSES = ("held", "confirmed", "checked_in", "completed", "cancelled", "expired", "no_show")
# Statuses that count against the quotas. A checked-in booking is no longer "active": the visit is under
# way, so the citizen may already book their next one.
ACTIVE_STATUSES = ("held", "confirmed")
BOOKING_KINDS = ("regular", "urgent")
SUSPENSION_KINDS = ("no_show", "cancel_cooldown")
SUSPENSION_SCOPES = ("high_demand", "all")

# A booking carries at most this many applicants (seats).
MAX_APPLICANTS = 5
# Seats handed out by a draw or a waitlist are held too, but they do not use up the citizen's one hold.
_HELD = "status = 'held' AND draw_entry_id IS NULL AND waitlist_entry_id IS NULL"
# Bookings holding a seat that can fall due for release (a hold expiring, a cancel past its delay). Each
# holds a seat of its slot, so a slot has at most `capacity` of them whatever its history: counting a
# slot's due seats through the partial index on this (availability) reads no more rows as cancelled and
# expired bookings pile up. Written as SQL text so that a query naming it matches the index's predicate
# as it is, literals and all (a bound parameter would not prove it in a generic plan).
SEAT_RELEASABLE = "holds_seat AND status IN ('held', 'cancelled')"


class Slot(db.Model):
    """A bookable time of an offering; `capacity` is the seats sold in the app (walk-in share excluded)."""

    __tablename__ = "slots"
    __table_args__ = (
        # Also the availability index: (offering_id, start) ranges.
        UniqueConstraint("offering_id", "start"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_range"),
        CheckConstraint('"end" > start', name="end_after_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offerings.id", ondelete="CASCADE"))
    start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    local_date: Mapped[dt.date] = mapped_column(Date)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # False once the schedule no longer has this time (a closure, new hours) but bookings still point at it.
    open: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    offering: Mapped[Offering] = relationship()


class Booking(db.Model):
    """A citizen's visit: a regular booking of a slot, or an urgent pass for a day (no slot)."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(
            "status IN ('held', 'confirmed', 'checked_in', 'completed', 'cancelled', 'expired', 'no_show')",
            name="status",
        ),
        CheckConstraint("kind IN ('regular', 'urgent')", name="kind"),
        CheckConstraint(f"seats BETWEEN 1 AND {MAX_APPLICANTS}", name="seats_range"),
        CheckConstraint(
            "(kind = 'regular' AND slot_id IS NOT NULL) OR (kind = 'urgent' AND urgent_date IS NOT NULL)",
            name="kind_shape",
        ),
        # One hold at a time per citizen.
        Index(
            "uq_bookings_one_hold",
            "account_id",
            unique=True,
            postgresql_where=text(_HELD),
            sqlite_where=text(_HELD),
        ),
        Index("ix_bookings_account_id_created_at", "account_id", "created_at"),
        Index("ix_bookings_slot_id_status", "slot_id", "status"),
        Index(
            "ix_bookings_slot_id_releasable",
            "slot_id",
            postgresql_where=text(SEAT_RELEASABLE),
            sqlite_where=text(SEAT_RELEASABLE),
        ),
        Index("ix_bookings_status_hold_expires_at", "status", "hold_expires_at"),
        Index("uq_bookings_draw_entry_id", "draw_entry_id", unique=True),
        Index("uq_bookings_waitlist_entry_id", "waitlist_entry_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("slots.id"))
    offering_id: Mapped[int] = mapped_column(ForeignKey("offerings.id"))
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id"))
    service_code: Mapped[str] = mapped_column(String(64))
    service_group: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10), default="regular")
    # One per applicant: the seats this booking takes on its slot (1 for a citizen alone).
    seats: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    urgent_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="held")
    holds_seat: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    seat_release_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    device_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    no_show_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    rescheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Set when the seat came from a draw (won or offered) or a waitlist offer: one booking per entry, ever.
    draw_entry_id: Mapped[int | None] = mapped_column(ForeignKey("draw_entries.id", ondelete="SET NULL"))
    waitlist_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("waitlist_entries.id", ondelete="SET NULL")
    )

    slot: Mapped[Slot | None] = relationship()
    centre: Mapped[Centre] = relationship()
    offering: Mapped[Offering] = relationship()
    applicants: Mapped[list[BookingApplicant]] = relationship(
        order_by="BookingApplicant.position", lazy="selectin", viewonly=True
    )


class BookingApplicant(db.Model):
    """A person a booking is for (the citizen, a dependent), as the registry named them when booked."""

    __tablename__ = "booking_applicants"
    __table_args__ = (
        UniqueConstraint("booking_id", "national_id"),
        UniqueConstraint("booking_id", "position"),
        # One active booking per person and service group, whoever booked it and whatever the concurrency.
        Index(
            "uq_booking_applicants_active_per_group",
            "national_id",
            "service_group",
            unique=True,
            postgresql_where=text("active"),
            sqlite_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    national_id: Mapped[str] = mapped_column(String(20))
    full_name_ar: Mapped[str] = mapped_column(String(200))
    full_name_en: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[dt.date] = mapped_column(Date)
    service_group: Mapped[str] = mapped_column(String(64))
    # Kept by the bookings.status trigger: true while the booking is a held or confirmed regular one.
    active: Mapped[bool] = mapped_column(Boolean)


class UrgentReserveUsage(db.Model):
    """How much of an offering's daily urgent reserve is used on a centre-local date."""

    __tablename__ = "urgent_reserve_usage"
    __table_args__ = (
        UniqueConstraint("offering_id", "local_date"),
        CheckConstraint("used >= 0", name="used_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offerings.id", ondelete="CASCADE"))
    local_date: Mapped[dt.date] = mapped_column(Date)
    used: Mapped[int] = mapped_column(Integer, default=0)


class AbuseEvent(db.Model):
    """A refusal (or sanction) for abuse, with its rule and reason, for admins to review."""

    __tablename__ = "abuse_events"
    __table_args__ = (
        Index("ix_abuse_events_created_at", "created_at"),
        Index("ix_abuse_events_national_id_created_at", "national_id", "created_at"),
        Index("ix_abuse_events_rule_created_at", "rule", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    national_id: Mapped[str | None] = mapped_column(String(20))
    device_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class BookingSuspension(db.Model):
    """A period in which a citizen may not book (high-demand services, or everything)."""

    __tablename__ = "booking_suspensions"
    __table_args__ = (
        CheckConstraint("kind IN ('no_show', 'cancel_cooldown')", name="kind"),
        CheckConstraint("scope IN ('high_demand', 'all')", name="scope"),
        Index("ix_booking_suspensions_account_id_until", "account_id", "until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))


class DeviceBinding(db.Model):
    """An account seen booking from a device id (at most DEVICE_ACCOUNT_LIMIT accounts per window)."""

    __tablename__ = "device_bindings"
    __table_args__ = (
        UniqueConstraint("device_id", "account_id"),
        Index("ix_device_bindings_device_id_last_seen", "device_id", "last_seen"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
