"""Centres, their counters and closures, services and offerings (a service at a centre)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

CENTRE_KINDS = ("one_stop", "passport_office", "embassy")
ELIGIBILITY_RULES = ("none", "passport_renew", "passport_issue")
ALLOCATIONS = ("first_come", "draw")


class Centre(db.Model):
    __tablename__ = "centres"
    __table_args__ = (CheckConstraint("kind IN ('one_stop', 'passport_office', 'embassy')", name="kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_ar: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    timezone: Mapped[str] = mapped_column(String(64))
    address_ar: Mapped[str] = mapped_column(String(300), default="")
    address_en: Mapped[str] = mapped_column(String(300), default="")
    weekly_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remote_tickets_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    counters: Mapped[list[Counter]] = relationship(
        back_populates="centre", order_by="Counter.number", cascade="all, delete-orphan"
    )
    closures: Mapped[list[Closure]] = relationship(order_by="Closure.date", cascade="all, delete-orphan")
    offerings: Mapped[list[Offering]] = relationship(back_populates="centre", cascade="all, delete-orphan")


class Counter(db.Model):
    __tablename__ = "counters"
    __table_args__ = (UniqueConstraint("centre_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    name_ar: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))

    centre: Mapped[Centre] = relationship(back_populates="counters")


class Closure(db.Model):
    __tablename__ = "closures"
    __table_args__ = (UniqueConstraint("centre_id", "date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    reason_ar: Mapped[str] = mapped_column(String(200), default="")
    reason_en: Mapped[str] = mapped_column(String(200), default="")


class Service(db.Model):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("eligibility IN ('none', 'passport_renew', 'passport_issue')", name="eligibility"),
        CheckConstraint("avg_service_minutes > 0", name="avg_service_minutes_positive"),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    group: Mapped[str] = mapped_column("service_group", String(64), index=True)
    name_ar: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    agency_ar: Mapped[str] = mapped_column(String(200), default="")
    agency_en: Mapped[str] = mapped_column(String(200), default="")
    avg_service_minutes: Mapped[int] = mapped_column(Integer, default=10)
    ticket_prefix: Mapped[str] = mapped_column(String(2))
    high_demand: Mapped[bool] = mapped_column(Boolean, default=False)
    eligibility: Mapped[str] = mapped_column(String(20), default="none")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Offering(db.Model):
    """A service offered at a centre, with the shape of its slots."""

    __tablename__ = "offerings"
    __table_args__ = (
        UniqueConstraint("centre_id", "service_code"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("slot_minutes BETWEEN 5 AND 480", name="slot_minutes_range"),
        CheckConstraint("walk_in_share BETWEEN 0 AND 100", name="walk_in_share_range"),
        CheckConstraint("urgent_reserve_per_day >= 0", name="urgent_reserve_nonnegative"),
        CheckConstraint("allocation IN ('first_come', 'draw')", name="allocation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"), index=True)
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"), index=True)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=20)
    capacity: Mapped[int] = mapped_column(Integer, default=2)
    walk_in_share: Mapped[int] = mapped_column(Integer, default=0)
    urgent_reserve_per_day: Mapped[int] = mapped_column(Integer, default=0)
    horizon_days: Mapped[int | None] = mapped_column(Integer)
    weekly_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # How release-day seats are given : first come, or by draws (booking/draws.py).
    allocation: Mapped[str] = mapped_column(String(12), default="first_come", server_default="first_come")

    centre: Mapped[Centre] = relationship(back_populates="offerings")
    service: Mapped[Service] = relationship(lazy="joined")

    @property
    def bookable_capacity(self) -> int:
        """Seats per slot sold in the app; the walk-in share stays at the centre."""
        return max(1, self.capacity - (self.capacity * self.walk_in_share) // 100)

    @property
    def effective_hours(self) -> dict[str, Any]:
        return self.weekly_hours or self.centre.weekly_hours
