"""What a hold request that died part-way left behind, so the replay of its `Idempotency-Key` answers it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app.extensions import db
from booking.models import Booking

# The clock of the request that claimed the key and the one that wrote the booking are the same process
# clock; the margin covers a claim written a moment before the booking's `created_at` was taken.
CLAIM_MARGIN = dt.timedelta(seconds=1)


def find_orphan_hold(*, account_id: int, slot_id: int, since: dt.datetime) -> Booking | None:
    """The citizen's regular booking of this slot made since the key was first claimed, if any."""
    return db.session.scalar(
        select(Booking)
        .where(
            Booking.account_id == account_id,
            Booking.slot_id == slot_id,
            Booking.kind == "regular",
            Booking.created_at >= since - CLAIM_MARGIN,
        )
        .order_by(Booking.id)
        .limit(1)
    )
