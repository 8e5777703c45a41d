"""`Idempotency-Key` on creating POSTs, as Stripe promises it.

The first answer (any status below 500) is stored and replayed for the same key and payload; the same
key with a different payload is 422; a second request while the first is still running is 409. Keys are
per caller and pruned after IDEMPOTENCY_TTL_HOURS. The unique index on (owner, key) makes the claim
atomic on every engine.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, Integer, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.database import UTCDateTime
from app.errors import AppError, Conflict, ValidationFailed, app_error_response
from app.extensions import db
from app.security import current_principal, document

HEADER = "Idempotency-Key"


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    message = _l("This Idempotency-Key was already used with a different request.")


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    message = _l("The same request is still being processed. Try again in a moment.")


def _owner() -> str:
    principal = current_principal()
    return f"{principal.role}:{principal.id}" if principal else f"anon:{request.remote_addr}"


def _fingerprint() -> str:
    body = request.get_data(cache=True) or b""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(request.method.encode() + request.path.encode() + b"\n" + canonical).hexdigest()


def _replay(row: IdempotencyKey) -> Response:
    response = current_app.response_class(
        json.dumps(row.response_body, ensure_ascii=False),
        status=row.response_status,
        mimetype="application/json",
    )
    response.headers["Idempotent-Replayed"] = "true"
    return response


def idempotent(view: Callable) -> Callable:
    """Decorate a creating view (above flask-smorest's decorators) to honour `Idempotency-Key`."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if not key:
            return view(*args, **kwargs)
        if len(key) > 255:
            raise ValidationFailed(details={"fields": {HEADER: ["At most 255 characters."]}})
        owner, fingerprint = _owner(), _fingerprint()
        claimed = IdempotencyKey(owner=owner, key=key, fingerprint=fingerprint)
        db.session.add(claimed)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            existing = db.session.scalar(
                select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
            )
            if existing is None:  # pruned in between: let the client retry
                raise IdempotencyInProgress() from None
            if existing.fingerprint != fingerprint:
                raise IdempotencyKeyReused() from None
            if existing.response_status is None:
                raise IdempotencyInProgress() from None
            return _replay(existing)
        claim_id = claimed.id
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except AppError as error:
            response = app_error_response(error)
        except Exception:
            db.session.rollback()
            db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim_id))
            db.session.commit()
            raise
        if response.status_code >= 500 or not response.is_json:
            db.session.rollback()
            db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim_id))
        else:
            db.session.rollback()  # whatever the view left open is not ours to commit
            db.session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == claim_id)
                .values(response_status=response.status_code, response_body=response.get_json())
            )
        db.session.commit()
        return response

    return document(
        wrapper,
        parameters=[
            {
                "in": "header",
                "name": HEADER,
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Replays the first answer for the same key and body (24 h).",
            }
        ],
    )


def prune_idempotency_keys() -> int:
    """Delete keys older than the configured lifetime; returns how many."""
    cutoff = clock.now() - dt.timedelta(hours=current_app.config["IDEMPOTENCY_TTL_HOURS"])
    deleted = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)).rowcount
    db.session.commit()
    return deleted or 0
