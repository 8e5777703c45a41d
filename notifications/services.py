"""Rules of the notifications domain: the outbox other domains write to, devices and the inbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.database import is_postgres
from app.extensions import db
from notifications.errors import DeviceNotFound, NotificationNotFound
from notifications.messages import render, routing_data
from notifications.models import Device, Notification


def notify_citizen(
    *,
    account_id: int,
    kind: str,
    params: Mapping[str, Any] | None = None,
    data: Mapping[str, str] | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Queue a notification in the caller's transaction (no commit); a repeated dedupe_key is ignored."""
    queue_notification(account_id=account_id, kind=kind, params=params, data=data, dedupe_key=dedupe_key)


def queue_notification(
    *,
    account_id: int,
    kind: str,
    params: Mapping[str, Any] | None = None,
    data: Mapping[str, str] | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """`notify_citizen` that tells whether a row was added (False: the dedupe_key was already used)."""
    params = dict(params or {})
    account = db.session.get(Account, account_id)
    if account is None:
        raise LookupError(f"no account {account_id}")
    text = render(kind, params, account.language)
    values = {
        "account_id": account_id,
        "kind": kind,
        "language": text.language,
        "title": text.title[:300],
        "body": text.body[:1000],
        "data": routing_data(kind, params, data),
        "dedupe_key": dedupe_key,
        "created_at": clock.now(),
    }
    if dedupe_key is None:
        db.session.execute(insert(Notification).values(**values))
        return True
    # Insert-if-absent: a duplicate is skipped by the database itself, without an error that would
    # break the caller's transaction (and without a race between a check and the insert).
    dialect = postgresql if is_postgres(db.session.get_bind()) else sqlite
    stmt = (
        dialect.insert(Notification)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Notification.id)
    )
    return db.session.execute(stmt).scalar() is not None


def notify_citizens(
    *, account_ids: list[int], kind: str, params: Mapping[str, Any], dedupe_prefix: str, keys: list[str]
) -> int:
    """One notification of `kind` with the same params to many citizens (no commit); returns rows added.

    Rendered once per language and inserted in batches, for release-day crowds (a draw's waitlist);
    `dedupe_prefix:key` per citizen makes a replay add nothing.
    """
    if not account_ids:
        return 0
    languages: dict[int, str] = {}
    for start in range(0, len(account_ids), 5000):
        chunk = account_ids[start : start + 5000]
        languages.update(
            db.session.execute(select(Account.id, Account.language).where(Account.id.in_(chunk))).all()
        )
    texts = {language: render(kind, params, language) for language in set(languages.values())}
    data = routing_data(kind, params, None)
    now = clock.now()
    rows = [
        {
            "account_id": account_id,
            "kind": kind,
            "language": texts[languages[account_id]].language,
            "title": texts[languages[account_id]].title[:300],
            "body": texts[languages[account_id]].body[:1000],
            "data": data,
            "dedupe_key": f"{dedupe_prefix}:{key}",
            "created_at": now,
        }
        for account_id, key in zip(account_ids, keys, strict=True)
        if account_id in languages
    ]
    dialect = postgresql if is_postgres(db.session.get_bind()) else sqlite
    added = 0
    for start in range(0, len(rows), 2000):
        stmt = (
            dialect.insert(Notification)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(Notification.id)
        )
        added += len(db.session.connection().execute(stmt, rows[start : start + 2000]).all())
    return added


# ---------------------------------------------------------------------------------------- devices


def register_device(*, account_id: int, token: str, platform: str, device_id: str) -> tuple[Device, bool]:
    """Register or refresh a push token; returns (device, created). Moves a token owned by another account."""
    for attempt in range(5):
        try:
            with db.session.begin_nested():
                device, created = _upsert_device(account_id, token, platform, device_id)
            db.session.commit()
            return device, created
        except IntegrityError:
            # Another request registered the same token or device at the same instant: look again.
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _upsert_device(account_id: int, token: str, platform: str, device_id: str) -> tuple[Device, bool]:
    now = clock.now()
    fresh = {"populate_existing": True}  # a retry must see the rows as they are now
    by_token = db.session.scalar(
        select(Device).where(Device.token == token).with_for_update().execution_options(**fresh)
    )
    by_device = db.session.scalar(
        select(Device)
        .where(Device.account_id == account_id, Device.device_id == device_id)
        .with_for_update()
        .execution_options(**fresh)
    )
    if by_token is not None and by_token.account_id == account_id:
        if by_device is not None and by_device.id != by_token.id:
            db.session.delete(by_device)  # the install's old token row gives way to this one
            db.session.flush()
        by_token.device_id, by_token.platform, by_token.updated_at = device_id, platform, now
        db.session.flush()
        return by_token, False
    if by_token is not None:
        # A different person signed in on that phone: the row moves to this account (updated in place,
        # so concurrent registrations of the token queue on its row lock instead of colliding). The
        # dispatcher checks the owner when it sends, so the previous owner's pending pushes are dropped.
        if by_device is not None:
            db.session.delete(by_device)  # this install's previous token gives way
            db.session.flush()
        by_token.account_id, by_token.device_id, by_token.platform = account_id, device_id, platform
        by_token.created_at = by_token.updated_at = now
        db.session.flush()
        return by_token, True
    if by_device is not None:
        by_device.token, by_device.platform, by_device.updated_at = token, platform, now
        db.session.flush()
        return by_device, False
    device = Device(
        account_id=account_id,
        token=token,
        platform=platform,
        device_id=device_id,
        created_at=now,
        updated_at=now,
    )
    db.session.add(device)
    db.session.flush()
    return device, True


def list_devices(*, account_id: int):
    """The account's registered devices, newest first (a select for pagination)."""
    return select(Device).where(Device.account_id == account_id).order_by(Device.id.desc())


def delete_device(*, account_id: int, device_pk: int) -> None:
    """Forget one of the account's devices (404 for anyone else's)."""
    device = db.session.get(Device, device_pk)
    if device is None or device.account_id != account_id:
        raise DeviceNotFound()
    db.session.delete(device)
    db.session.commit()


# ------------------------------------------------------------------------------------------ inbox


def list_notifications(*, account_id: int, unread: bool | None = None):
    """The account's inbox, newest first (a select for pagination)."""
    query = select(Notification).where(Notification.account_id == account_id)
    if unread is True:
        query = query.where(Notification.read_at.is_(None))
    elif unread is False:
        query = query.where(Notification.read_at.is_not(None))
    return query.order_by(Notification.id.desc())


def mark_notification_read(*, account_id: int, notification_id: int) -> Notification:
    """Mark one of the account's notifications read (idempotent; 404 for anyone else's)."""
    now = clock.now()
    db.session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.account_id == account_id,
            Notification.read_at.is_(None),
        )
        .values(read_at=now)
    )
    notification = db.session.get(Notification, notification_id, populate_existing=True)
    if notification is None or notification.account_id != account_id:
        db.session.rollback()
        raise NotificationNotFound()
    db.session.commit()
    return notification


def mark_all_read(*, account_id: int) -> int:
    """Mark every unread notification of the account read; returns how many changed."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.account_id == account_id, Notification.read_at.is_(None))
        .values(read_at=clock.now())
    )
    db.session.commit()
    return result.rowcount or 0


def unread_count(*, account_id: int) -> int:
    """How many of the account's notifications are unread."""
    from sqlalchemy import func

    return (
        db.session.scalar(
            select(func.count()).where(Notification.account_id == account_id, Notification.read_at.is_(None))
        )
        or 0
    )
