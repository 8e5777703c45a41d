"""Scheduled job of the notifications domain: the push dispatcher (visit reminders are booking's job).

It runs only in the scheduler (never inside a web request), in an app context, and is safe to run
twice at once: rows are claimed with SELECT ... FOR UPDATE SKIP LOCKED (serialised by BEGIN IMMEDIATE
on SQLite).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_request_context
from sqlalchemy import delete, select, update

from app import clock
from app.extensions import db
from notifications.fcm import FcmSender, PushMessage, SendOutcome, SendResult
from notifications.metrics import count_push_outcomes
from notifications.models import Device, Notification, PushDelivery

log = logging.getLogger("sanad.notifications")
_sender_lock = threading.Lock()
FAN_OUT_BATCH = 200
MAX_ROUNDS = 20  # batches per run, so one run cannot monopolise the scheduler thread


# ------------------------------------------------------------------------------------ dispatcher


def dispatch_outbox() -> int:
    """Copy new notifications to the push outbox (or the log without FCM) and send what is due."""
    if has_request_context():
        raise RuntimeError("dispatch_outbox runs in the scheduler, never inside a web request")
    sender = get_sender()
    effects = 0
    for _ in range(MAX_ROUNDS):
        done, more = _fan_out(push_enabled=sender is not None)
        effects += done
        if not more:
            break
    if sender is None:
        return effects
    batch_size = int(current_app.config["PUSH_BATCH_SIZE"])
    for _ in range(MAX_ROUNDS):
        claimed = _claim_due(batch_size)
        if not claimed:
            break
        effects += _deliver(sender, claimed)
        if len(claimed) < batch_size:
            break
    return effects


def get_sender() -> FcmSender | None:
    """The app's FCM sender, built from FCM_CREDENTIALS on first use; None means log-only delivery."""
    app = current_app._get_current_object()
    sender = app.extensions.get("fcm_sender")
    if sender is not None or not app.config.get("FCM_CREDENTIALS"):
        return sender
    with _sender_lock:
        sender = app.extensions.get("fcm_sender")
        if sender is None:
            sender = FcmSender(
                credentials_path=app.config["FCM_CREDENTIALS"], app_name=f"sanad-fcm-{id(app)}"
            )
            app.extensions["fcm_sender"] = sender
    return sender


def _fan_out(*, push_enabled: bool) -> tuple[int, bool]:
    """One batch of new notifications: outbox rows per device of the account, or a log line each."""
    now = clock.now()
    oldest_push = now - dt.timedelta(hours=int(current_app.config["PUSH_MAX_AGE_HOURS"]))
    ids = db.session.scalars(
        select(Notification.id)
        .where(Notification.fanned_out_at.is_(None))
        .order_by(Notification.id)
        .limit(FAN_OUT_BATCH)
        .with_for_update(skip_locked=True, key_share=True)
    ).all()
    if not ids:
        db.session.rollback()
        return 0, False
    to_log: list[dict[str, Any]] = []
    for notification in db.session.scalars(select(Notification).where(Notification.id.in_(ids))):
        marked = db.session.execute(
            update(Notification)
            .where(Notification.id == notification.id, Notification.fanned_out_at.is_(None))
            .values(fanned_out_at=now)
        ).rowcount
        if not marked:
            continue
        if not push_enabled:
            to_log.append(_log_entry(notification))
        elif notification.created_at >= oldest_push:  # a stale "your turn is near" helps nobody
            device_ids = db.session.scalars(
                select(Device.id).where(Device.account_id == notification.account_id)
            ).all()
            for device_id in device_ids:
                db.session.add(
                    PushDelivery(
                        notification_id=notification.id,
                        device_id=device_id,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
    db.session.commit()
    for entry in to_log:  # after the commit: never log a message that was not recorded
        log.info(
            f"notification {entry['notification_id']} ({entry['kind']}, {entry['language']}) "
            f"to account {entry['account_id']}: {entry['title']} - {entry['body']}",
            extra={"fields": entry},
        )
    return len(ids), len(ids) == FAN_OUT_BATCH


def _log_entry(notification: Notification) -> dict[str, Any]:
    return {
        "event": "notification.logged",
        "reason": "FCM_CREDENTIALS not set: inbox and log only",
        "notification_id": notification.id,
        "account_id": notification.account_id,
        "kind": notification.kind,
        "language": notification.language,
        "title": notification.title,
        "body": notification.body,
        "data": notification.data,
    }


@dataclass(frozen=True, slots=True)
class _Claimed:
    delivery_id: int
    claim_token: str
    attempts: int
    device_pk: int | None
    token: str | None
    owner_matches: bool
    message: PushMessage | None


def _claim_due(limit: int) -> list[_Claimed]:
    """Claim up to `limit` due rows: a fresh claim token and next_attempt_at moved past the lease."""
    now = clock.now()
    claim_token = uuid.uuid4().hex
    ids = db.session.scalars(
        select(PushDelivery.id)
        .where(PushDelivery.status == "pending", PushDelivery.next_attempt_at <= now)
        .order_by(PushDelivery.next_attempt_at, PushDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, key_share=True)
    ).all()
    if not ids:
        db.session.rollback()
        return []
    lease = dt.timedelta(seconds=int(current_app.config["PUSH_CLAIM_LEASE_SECONDS"]))
    db.session.execute(
        update(PushDelivery)
        .where(PushDelivery.id.in_(ids), PushDelivery.status == "pending")
        .values(claim_token=claim_token, next_attempt_at=now + lease)
    )
    rows = db.session.execute(
        select(PushDelivery, Notification, Device)
        .join(Notification, Notification.id == PushDelivery.notification_id)
        .outerjoin(Device, Device.id == PushDelivery.device_id)
        .where(PushDelivery.claim_token == claim_token)
        .order_by(PushDelivery.id)
    ).all()
    claimed = []
    for delivery, notification, device in rows:
        owner_matches = device is not None and device.account_id == notification.account_id
        message = None
        if owner_matches:
            message = PushMessage(
                token=device.token,
                title=notification.title,
                body=notification.body,
                data={**(notification.data or {}), "notification_id": str(notification.id)},
            )
        claimed.append(
            _Claimed(
                delivery_id=delivery.id,
                claim_token=claim_token,
                attempts=delivery.attempts,
                device_pk=device.id if device is not None else None,
                token=device.token if device is not None else None,
                owner_matches=owner_matches,
                message=message,
            )
        )
    db.session.commit()  # nothing is held open while FCM is called
    return claimed


def _deliver(sender: FcmSender, claimed: list[_Claimed]) -> int:
    """Send the claimed rows in one send_each batch and record each outcome."""
    sendable = [c for c in claimed if c.message is not None]
    try:
        results = sender.send_batch([c.message for c in sendable]) if sendable else []
    except Exception as exc:  # FcmSender promises not to raise; if it does, nothing is lost
        log.exception("fcm sender failed; the batch will be retried")
        results = [SendResult(SendOutcome.RETRY, error_code="EXCEPTION", detail=str(exc)[:200])] * len(
            sendable
        )
    outcome_of = {c.delivery_id: r for c, r in zip(sendable, results, strict=True)}
    now = clock.now()
    config = current_app.config
    counts: dict[str, int] = {}
    for item in claimed:
        result = outcome_of.get(item.delivery_id)
        mine = (PushDelivery.id == item.delivery_id, PushDelivery.claim_token == item.claim_token)
        attempts = item.attempts + (1 if result is not None else 0)
        values: dict[str, Any] = {"claim_token": None, "attempts": attempts}
        if result is None:  # the device is gone or now belongs to someone else
            values.update(status="dropped", finished_at=now, last_error="device removed or reassigned")
        elif result.outcome is SendOutcome.SENT:
            values.update(status="sent", finished_at=now, message_id=result.message_id, last_error=None)
        elif result.outcome is SendOutcome.DROP_TOKEN:
            # Only the token FCM refused: the app may have refreshed the row's token meanwhile.
            db.session.execute(delete(Device).where(Device.id == item.device_pk, Device.token == item.token))
            values.update(status="dropped", finished_at=now, last_error=_error_text(result))
        elif result.outcome is SendOutcome.RETRY and attempts < int(config["PUSH_MAX_ATTEMPTS"]):
            values.update(
                status="pending",
                next_attempt_at=now + backoff_delay(attempts),
                last_error=_error_text(result),
            )
        else:  # FAILED (our payload or credentials), or RETRY with no attempts left
            values.update(status="failed", finished_at=now, last_error=_error_text(result))
        db.session.execute(update(PushDelivery).where(*mine).values(**values))
        counts[values["status"]] = counts.get(values["status"], 0) + 1
    db.session.commit()
    count_push_outcomes(counts)
    log.info(
        f"push batch of {len(claimed)}: {counts}",
        extra={"fields": {"event": "push.batch", "claimed": len(claimed), "outcomes": counts}},
    )
    return len(claimed)


def backoff_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff with jitter: half of min(cap, base * 2^(attempts-1)) plus a random half."""
    base = int(current_app.config["PUSH_BACKOFF_BASE_SECONDS"])
    cap = int(current_app.config["PUSH_BACKOFF_CAP_SECONDS"])
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return dt.timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def _error_text(result: SendResult) -> str:
    return f"{result.error_code or result.outcome}: {result.detail or ''}"[:300]
