"""Accounts, one-time phone codes, refresh-token families and kiosk devices."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.database import UTCDateTime
from app.extensions import db
from app.registry.services import HOME_COUNTRY, lives_abroad

ROLES = ("citizen", "kiosk", "staff", "supervisor", "admin")
CENTRE_ROLES = ("staff", "supervisor")


class Account(db.Model):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("role IN ('citizen', 'staff', 'supervisor', 'admin')", name="role"),
        CheckConstraint("language IN ('ar', 'en')", name="language"),
        CheckConstraint("role NOT IN ('staff', 'supervisor') OR centre_id IS NOT NULL", name="centre_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    national_id: Mapped[str] = mapped_column(String(20), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="citizen")
    centre_id: Mapped[str | None] = mapped_column(ForeignKey("centres.id"), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[dt.date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    phone_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    password_hash: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(2), default="ar")
    residence_country: Mapped[str] = mapped_column(String(2), default="JO")
    # Sign-in attempts since the last success, from any address, and until when the next one must wait
    # (growing delays: app/accounts/services.py `login`); the lock of one address is a LoginLockout.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)

    @property
    def is_verified(self) -> bool:
        return self.phone_verified_at is not None

    @hybrid_property
    def is_expatriate(self) -> bool:
        """Lives abroad (the registry's rule); in SQL, the same test on the column."""
        return lives_abroad(self.residence_country)

    @is_expatriate.inplace.expression
    @classmethod
    def _is_expatriate_expression(cls) -> ColumnElement[bool]:
        return func.upper(cls.residence_country) != HOME_COUNTRY


class PhoneCode(db.Model):
    """A one-time code sent by SMS; only its keyed hash is kept."""

    __tablename__ = "phone_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class RefreshToken(db.Model):
    """One link in a rotating refresh-token family; a reused link revokes the family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Indexed: app/accounts/revocation.py copies the sessions revoked in the last minutes back into Redis.
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class LoginLockout(db.Model):
    """Failed sign-ins for one national id from one address: that pair, not the account, gets locked."""

    __tablename__ = "login_lockouts"
    __table_args__ = (UniqueConstraint("account_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every attempt: the condition of the next conditional UPDATE (parallel attempts count once).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)


class KioskDevice(db.Model):
    """A ticket machine bound to one centre; its bearer token is stored hashed and can be revoked."""

    __tablename__ = "kiosk_devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DisplayScreen(db.Model):
    """A hall display bound to one centre: its token opens that centre's live stream past the per-address
    cap (app/accounts/services.py stores it hashed, like a kiosk's)."""

    __tablename__ = "display_screens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre_id: Mapped[str] = mapped_column(ForeignKey("centres.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
