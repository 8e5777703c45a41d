"""Rules of the notifications domain: the outbox other domains write to, devices and the inbox."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy import text as sql
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.dialect import dialect_insert, insert_ignoring, on_postgres
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
    language: str | None = None,
) -> bool:
    """Add a notification in the caller's transaction (no commit); whether a row was added (False: the
    dedupe_key was already used, and the repeat is ignored). `language`: the account's, when the caller
    has it in hand (the account is not read then)."""
    values = notification_values(
        account_id=account_id, kind=kind, params=params, data=data, dedupe_key=dedupe_key, language=language
    )
    return insert_notification(values)


def insert_notification(values: Mapping[str, Any]) -> bool:
    """Write a notification row (`notification_values`) in the caller's transaction; False when its
    dedupe_key was already used (the repeat is ignored)."""
    if values.get("dedupe_key") is None:
        db.session.execute(insert(Notification).values(**values))
        return True
    stmt = insert_ignoring(Notification, index_elements=["dedupe_key"], **values).returning(Notification.id)
    return db.session.execute(stmt).scalar() is not None


# The columns of a notification's row, as `notification_values` gives them.
NOTIFICATION_COLUMNS = ("account_id", "kind", "language", "title", "body", "data", "dedupe_key", "created_at")


def notification_values(
    *,
    account_id: int,
    kind: str,
    params: Mapping[str, Any] | None = None,
    data: Mapping[str, str] | None = None,
    dedupe_key: str | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """The row of a notification to a citizen, rendered in their language (read when not given), for a
    caller that writes it in a statement of its own (`notify_citizen` writes it as it is)."""
    params = dict(params or {})
    if language is None:
        account = db.session.get(Account, account_id)
        if account is None:
            raise LookupError(f"no account {account_id}")
        language = account.language
    text = render(kind, params, language)
    return {
        "account_id": account_id,
        "kind": kind,
        "language": text.language,
        "title": text.title[:300],
        "body": text.body[:1000],
        "data": routing_data(kind, params, data),
        "dedupe_key": dedupe_key,
        "created_at": clock.now(),
    }


def notify_citizens(*, kind: str, items: list[tuple[int, Mapping[str, Any], str]]) -> int:
    """`kind` to many citizens at once, items (account_id, params, dedupe_key) (no commit); rows added.

    For release-day crowds (a draw's winners and waitlist): languages read in one query, each distinct
    (language, params) rendered once, rows inserted in batches; a dedupe_key already used is skipped.
    """
    if not items:
        return 0
    from app.catalogue.models import Centre, Service

    ids = sorted({account_id for account_id, _, _ in items})
    languages: dict[int, str] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        languages.update(
            db.session.execute(select(Account.id, Account.language).where(Account.id.in_(chunk))).all()
        )
    # Held here so that rendering finds them in the session's (weak) identity map, not in the database.
    names = [
        *db.session.scalars(
            select(Centre).where(Centre.id.in_({str(p.get("centre_id")) for _, p, _ in items}))
        ),
        *db.session.scalars(
            select(Service).where(Service.code.in_({str(p.get("service_code")) for _, p, _ in items}))
        ),
    ]
    texts: dict[tuple, Any] = {}
    now = clock.now()
    rows = []
    for account_id, params, dedupe_key in items:
        if account_id not in languages:
            continue
        language = languages[account_id]
        key = (language, tuple(sorted((k, str(v)) for k, v in params.items())))
        if key not in texts:
            texts[key] = (render(kind, params, language), routing_data(kind, params, None))
        rendered, data = texts[key]
        rows.append(
            {
                "account_id": account_id,
                "kind": kind,
                "language": rendered.language,
                "title": rendered.title[:300],
                "body": rendered.body[:1000],
                "data": data,
                "dedupe_key": dedupe_key,
                "created_at": now,
            }
        )
    del names
    if not on_postgres():
        stmt = dialect_insert(Notification).on_conflict_do_nothing(index_elements=["dedupe_key"])
        return db.session.connection().execute(stmt, rows).rowcount or 0
    added = 0
    for start in range(0, len(rows), 5000):  # PostgreSQL: one INSERT … SELECT FROM unnest(…) per 5,000
        chunk = rows[start : start + 5000]
        added += (
            db.session.execute(
                sql(
                    "INSERT INTO notifications (account_id, kind, language, title, body, data, dedupe_key, "
                    "created_at) SELECT a, :kind, l, t, b, CAST(d AS json), k, :now FROM unnest("
                    "CAST(:a AS integer[]), CAST(:l AS text[]), CAST(:t AS text[]), CAST(:b AS text[]), "
                    "CAST(:d AS text[]), CAST(:k AS text[])) AS v(a, l, t, b, d, k) "
                    "ON CONFLICT (dedupe_key) DO NOTHING"
                ),
                {
                    "kind": kind,
                    "now": now,
                    "a": [r["account_id"] for r in chunk],
                    "l": [r["language"] for r in chunk],
                    "t": [r["title"] for r in chunk],
                    "b": [r["body"] for r in chunk],
                    "d": [json.dumps(r["data"], ensure_ascii=False) for r in chunk],
                    "k": [r["dedupe_key"] for r in chunk],
                },
            ).rowcount
            or 0
        )
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
