"""The row and advisory locks of booking commands, always taken in the order account → slots → bookings.

So concurrent holds, reschedules, cancels and sweeps cannot deadlock on PostgreSQL; SQLite serialises
every write transaction (BEGIN IMMEDIATE, see `app.database`) and needs none of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from app.accounts.models import Account
from app.dialect import advisory_xact_lock, for_update, on_postgres
from app.extensions import db
from booking.models import Slot

DEVICE_LOCK_NAMESPACE = 7301


def lock_account(account_id: int) -> None:
    """Serialise one citizen's quota-changing commands (PostgreSQL row lock; SQLite is serial already)."""
    if on_postgres():
        db.session.execute(for_update(select(Account.id).where(Account.id == account_id)))


def lock_slots(slot_ids: Iterable[int]) -> None:
    """Lock slot rows in ascending id order (the one order every transaction uses)."""
    ids = sorted(set(slot_ids))
    if ids and on_postgres():
        db.session.execute(for_update(select(Slot.id).where(Slot.id.in_(ids)).order_by(Slot.id)))


def lock_device(device_id: str) -> None:
    """Serialise bindings of one device id (transaction-scoped advisory lock on PostgreSQL)."""
    advisory_xact_lock(device_id, DEVICE_LOCK_NAMESPACE)
