"""Scheduled jobs of the queue (run by the scheduler process inside an app context; each idempotent)."""

from __future__ import annotations

from sqlalchemy import select

from app.catalogue.models import Centre
from app.extensions import db

from . import services, stats


def close_day() -> int:
    """Expire tickets left waiting or called from earlier local days (or today's after closing), per
    centre zone, and close counter sessions left open overnight; returns how many rows changed."""
    centre_ids = db.session.scalars(select(Centre.id).order_by(Centre.id)).all()
    changed = 0
    for centre_id in centre_ids:
        centre = db.session.get(Centre, centre_id)
        changed += stats.expire_leftover_tickets(centre=centre)
    return changed


def expire_unanswered_calls() -> int:
    """Called tickets not started within QUEUE_CALL_GRACE_MINUTES become no-shows."""
    return services.expire_unanswered_calls()
