"""Tables of the notifications domain: devices, the inbox and the push outbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.database import UTCDateTime
from app.extensions import db

PLATFORMS = ("android", "ios", "web")
PUSH_STATUSES = ("pending", "sent", "failed", "dropped")


class Device(db.Model):
    """An FCM registration token of one app install; a token belongs to one account at a time."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("platform IN ('android', 'ios', 'web')", name="platform"),
        UniqueConstraint("account_id", "device_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(1024), unique=True)
    platform: Mapped[str] = mapped_column(String(10))
    device_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)


class Notification(db.Model):
    """One message in a citizen's inbox, rendered in the account's language when it was created.

    `fanned_out_at` is set by the dispatcher once the message was copied to the push outbox (one
    row per device of the account at that moment) or, without FCM, written to the log.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_account_id_id", "account_id", "id"),
        Index(
            "ix_notifications_unfanned",
            "id",
            postgresql_where=text("fanned_out_at IS NULL"),
            sqlite_where=text("fanned_out_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(2))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(String(1000))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    fanned_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PushDelivery(db.Model):
    """The push of one notification to one device: the outbox row the dispatcher claims and sends.

    A claimed row stays `pending` with `next_attempt_at` moved past a lease and a fresh `claim_token`,
    so a second dispatcher does not see it as due, and a crashed one's rows come back after the lease.
    """

    __tablename__ = "push_outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed', 'dropped')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        UniqueConstraint("notification_id", "device_id"),
        Index(
            "ix_push_outbox_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    # SET NULL: a deleted or dropped device leaves its history; the dispatcher drops such rows.
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    claim_token: Mapped[str | None] = mapped_column(String(36))
    last_error: Mapped[str | None] = mapped_column(String(300))
    message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
