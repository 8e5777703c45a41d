"""`Idempotency-Key` on creating POSTs, as Stripe promises it, with a claim that is a lease.

The first answer (any status below 500) is stored and replayed for the same key and payload; the same
key with a different payload is 422. A key is claimed for IDEMPOTENCY_LEASE_SECONDS: a second request
while the first still runs is 409 with `Retry-After`; once the lease lapses with no answer stored (the
worker died, the database went away mid-request), the next replay takes the key over. It first asks the
view's `recover` function whether the dead request wrote something (an orphan hold) and answers with
that; otherwise it carries the request out itself. A request that outlived its lease cannot store its
answer over the taker's: every write names the attempt that owns the key.

Only signed-in callers claim keys (an anonymous POST is refused by the view before any row is written).
Keys are per caller and pruned after IDEMPOTENCY_TTL_HOURS. The unique index on (owner, key) makes the
first claim atomic, and the attempt number makes the takeover atomic, on every engine.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import math
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
log = logging.getLogger(__name__)


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
    # Until when the attempt that holds the key may still answer; after that a replay may take it over.
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Which attempt holds the key: bumped by each takeover, named by every write of an answer.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    message = _l("This Idempotency-Key was already used with a different request.")


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    message = _l("The same request is still being processed. Try again in a moment.")


def _owner() -> str | None:
    principal = current_principal()
    return f"{principal.role}:{principal.id}" if principal else None


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


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=current_app.config["IDEMPOTENCY_LEASE_SECONDS"])


def _in_progress(row: IdempotencyKey, now: dt.datetime) -> IdempotencyInProgress:
    left = (row.lease_until - now).total_seconds() if row.lease_until else 1
    return IdempotencyInProgress(
        details={"retry_after": max(1, math.ceil(left))},
        headers={"Retry-After": str(max(1, math.ceil(left)))},
    )


def _claim(owner: str, key: str, fingerprint: str) -> tuple[int, int, dt.datetime] | Response:
    """Claim the key, or take over a lapsed one: (key id, attempt owned, first claimed at), else the
    stored answer to replay."""
    now = clock.now()
    claimed = IdempotencyKey(
        owner=owner, key=key, fingerprint=fingerprint, created_at=now, lease_until=now + _lease(), attempt=1
    )
    db.session.add(claimed)
    try:
        db.session.commit()
        return claimed.id, 1, now
    except IntegrityError:
        db.session.rollback()
    existing = db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    )
    if existing is None:  # pruned in between: let the client retry
        raise IdempotencyInProgress(headers={"Retry-After": "1"})
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if existing.response_status is not None:
        return _replay(existing)
    if existing.lease_until is not None and existing.lease_until > now:
        raise _in_progress(existing, now)
    # The attempt that held the key is gone (or overran its lease): take it over, once.
    taken = db.session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == existing.id,
            IdempotencyKey.attempt == existing.attempt,
            IdempotencyKey.response_status.is_(None),
        )
        .values(lease_until=now + _lease(), attempt=existing.attempt + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if taken != 1:
        raise IdempotencyInProgress(headers={"Retry-After": "1"})
    log.info("idempotency key taken over", extra={"key_id": existing.id, "attempt": existing.attempt + 1})
    return existing.id, existing.attempt + 1, existing.created_at


def _store(row_id: int, attempt: int, response: Response) -> None:
    db.session.rollback()  # whatever the view left open is not ours to commit
    db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row_id, IdempotencyKey.attempt == attempt)
        .values(response_status=response.status_code, response_body=response.get_json(), lease_until=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _release(row_id: int, attempt: int) -> None:
    """End the lease at once, so the client's replay takes over instead of waiting (best effort)."""
    try:
        db.session.rollback()
        db.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.id == row_id,
                IdempotencyKey.attempt == attempt,
                IdempotencyKey.response_status.is_(None),
            )
            .values(lease_until=clock.now())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except Exception:  # the database may be the reason we are here: then the lease lapses by itself
        log.warning("idempotency lease not released", extra={"key_id": row_id}, exc_info=True)
        try:
            db.session.rollback()
        except Exception:
            log.debug("rollback after a lost connection failed", exc_info=True)


def idempotent(view: Callable | None = None, *, recover: Callable[[dt.datetime], Any] | None = None):
    """Decorate a creating view (above flask-smorest's decorators) to honour `Idempotency-Key`.

    `recover(claimed_at)`, called when a replay takes over a key whose request died, returns what that
    request wrote (as a view's return value) or None to carry the request out again.
    """
    if view is None:
        return lambda inner: idempotent(inner, recover=recover)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if not key:
            return view(*args, **kwargs)
        if len(key) > 255:
            raise ValidationFailed(details={"fields": {HEADER: ["At most 255 characters."]}})
        owner = _owner()  # an invalid token is a 401 here, before any row is written
        if owner is None:  # anonymous: the view refuses (401) or serves without a key; nothing is stored
            return view(*args, **kwargs)
        claim = _claim(owner, key, _fingerprint())
        if isinstance(claim, Response):
            return claim
        row_id, attempt, claimed_at = claim
        try:
            if attempt > 1 and recover is not None:
                recovered = recover(claimed_at)
                if recovered is not None:
                    response = current_app.make_response(recovered)
                    response.headers["Idempotent-Recovered"] = "true"
                    _store(row_id, attempt, response)
                    return response
            response = current_app.make_response(view(*args, **kwargs))
        except AppError as error:
            response = app_error_response(error)
        except Exception:
            _release(row_id, attempt)
            raise
        if response.status_code >= 500 or not response.is_json:
            _release(row_id, attempt)
            return response
        _store(row_id, attempt, response)
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
