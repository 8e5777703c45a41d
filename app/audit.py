"""The append-only audit log every domain writes to: who decided or overrode what, when and why."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.database import UTCDateTime
from app.extensions import db


class AuditEntry(db.Model):
    """Who decided or overrode what, when and why. Append-only: the code never updates or deletes it,
    and on PostgreSQL a trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Not a foreign key: kiosks and the scheduler act too, and an entry must outlive whatever it names.
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    centre_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)


def record_audit(
    *,
    actor_id: int | None,
    actor_role: str,
    action: str,
    subject_type: str,
    subject_id: Any,
    centre_id: str | None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry to the current transaction (no commit)."""
    db.session.add(
        AuditEntry(
            actor_id=actor_id,
            actor_role=actor_role,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            centre_id=centre_id,
            reason=reason,
            details=details or {},
            created_at=clock.now(),
        )
    )
