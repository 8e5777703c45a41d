"""notify_citizen: rows in the caller's transaction, texts in the account's language, dedupe keys."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from notifications.models import Notification
from notifications.services import notify_citizen


def _count(**where) -> int:
    query = select(func.count()).select_from(Notification)
    for key, value in where.items():
        query = query.where(getattr(Notification, key) == value)
    return db.session.scalar(query)


def test_notify_citizen_writes_nothing_until_the_caller_commits(make, ctx):
    account = make.citizen(language="en")
    notify_citizen(account_id=account.id, kind="booking_confirmed", params={"reference": "SB-1"})
    db.session.rollback()
    assert _count() == 0

    notify_citizen(account_id=account.id, kind="booking_confirmed", params={"reference": "SB-1"})
    db.session.commit()
    assert _count() == 1


def test_a_rolled_back_booking_transaction_leaves_no_notification(make, ctx):
    """The caller's own rows and the notification commit or roll back together."""
    from app.catalogue.models import Service

    account = make.citizen(language="ar")
    db.session.add(
        Service(
            code="x.rollback",
            group="x",
            name_ar="خدمة",
            name_en="Service",
            avg_service_minutes=10,
            ticket_prefix="X",
            high_demand=False,
            eligibility="none",
        )
    )
    notify_citizen(
        account_id=account.id, kind="booking_held", params={"reference": "SB-2"}, dedupe_key="held:2"
    )
    db.session.rollback()
    assert _count() == 0
    assert db.session.get(Service, "x.rollback") is None


def test_a_repeated_dedupe_key_is_ignored_without_breaking_the_transaction(make, ctx):
    account = make.citizen(language="en")
    notify_citizen(
        account_id=account.id, kind="reminder_24h", params={"reference": "SB-3"}, dedupe_key="r24:3"
    )
    notify_citizen(
        account_id=account.id, kind="reminder_24h", params={"reference": "SB-3"}, dedupe_key="r24:3"
    )
    notify_citizen(account_id=account.id, kind="reminder_2h", params={"reference": "SB-3"}, dedupe_key="r2:3")
    db.session.commit()
    notify_citizen(
        account_id=account.id, kind="reminder_24h", params={"reference": "SB-3"}, dedupe_key="r24:3"
    )
    db.session.commit()
    assert _count(account_id=account.id) == 2
    assert _count(dedupe_key="r24:3") == 1
