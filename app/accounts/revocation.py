"""Ended sessions: the access tokens of a logged-out or revoked session are refused from the next request.

An access token carries its session id (`sid`, the refresh-token family). Ending a session writes the
database (the refresh family's `revoked_at`, the truth) and then a Redis key per session that lives as long
as an access token can. Each request with a session id costs one Redis round trip (`MGET` of that key and
of the "synced" marker), and nothing else: no database read, no per-process cache to keep coherent.

- Redis down: the request asks the database instead (one indexed read), so a revoked session stays
  refused, exactly.
- Redis lost its data (restart, flush) or missed a write (a blip during a logout): the "synced" marker is
  gone or expires (it lives SYNC_SECONDS), and the first request to notice copies the sessions revoked
  within an access token's lifetime from the database back into Redis. Until the copy is done requests ask
  the database. So a revocation is exact at once while Redis answers, and at worst SYNC_SECONDS late if
  Redis dropped its write while staying up.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import redis
from flask import current_app
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.redis_client import get_redis

log = logging.getLogger(__name__)

PREFIX = "revoked-session:"
SYNCED = "revoked-sessions:synced"
SYNCING = "revoked-sessions:syncing"
SYNC_SECONDS = 60


def _ttl() -> int:
    # As long as an access token of the session can still be presented (plus the clock skew allowed).
    return int(current_app.config["ACCESS_TOKEN_SECONDS"]) + 60


def mark_revoked(session_ids: Iterable[str]) -> None:
    """Tell Redis, after the database committed it, that these sessions ended (best effort)."""
    ids = [s for s in session_ids if s]
    if not ids:
        return
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.set(PREFIX + session_id, 1, ex=_ttl())
            pipe.execute()
    except redis.RedisError:
        log.warning("session revocation not written to Redis; the database holds it", exc_info=True)


def _revoked_in_database(session_id: str) -> bool:
    from app.accounts.models import RefreshToken

    return (
        db.session.scalar(
            select(RefreshToken.id)
            .where(RefreshToken.family_id == session_id, RefreshToken.revoked_at.is_not(None))
            .limit(1)
        )
        is not None
    )


def _copy_from_database(client: redis.Redis) -> None:
    """Write the sessions revoked within an access token's lifetime into Redis, then the marker."""
    from app.accounts.models import RefreshToken

    if not client.set(SYNCING, 1, nx=True, ex=10):
        return  # another request is copying
    since = clock.now() - dt.timedelta(seconds=_ttl())
    families = db.session.scalars(
        select(RefreshToken.family_id).where(RefreshToken.revoked_at >= since).distinct()
    ).all()
    with client.pipeline(transaction=False) as pipe:
        for family in families:
            pipe.set(PREFIX + family, 1, ex=_ttl())
        pipe.set(SYNCED, 1, ex=SYNC_SECONDS)
        pipe.delete(SYNCING)
        pipe.execute()


def is_revoked(session_id: str) -> bool:
    """Whether the session ended (logout, or its refresh family revoked for reuse)."""
    try:
        client = get_redis()
        synced, revoked = client.mget(SYNCED, PREFIX + session_id)
    except redis.RedisError:
        return _revoked_in_database(session_id)
    if revoked is not None:
        return True
    if synced is not None:
        return False
    try:
        _copy_from_database(client)
    except redis.RedisError:
        log.warning("revoked sessions not copied to Redis", exc_info=True)
    return _revoked_in_database(session_id)
