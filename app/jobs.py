"""Running one scheduled job: resolved by dotted path at run time, in an app context, under a lock.

The lock makes a second scheduler started by mistake harmless: on PostgreSQL it is a session-level
advisory lock (`pg_try_advisory_lock`) held on a dedicated connection for the length of the run, so
two processes, or two hosts, never run the same job at once; the loser skips its run. On SQLite
(one host, the embedded development setup) a process-local lock is enough. Jobs are idempotent
anyway; the lock only keeps them from doing the same work twice at the same moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from flask import Flask
from sqlalchemy import text

from app.metrics import JOB_RUNS, JOB_SECONDS

log = logging.getLogger("sanad.jobs")
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def advisory_key(job_id: str) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_lock` (Python's hash() changes per process)."""
    return int.from_bytes(hashlib.sha256(f"sanad-job:{job_id}".encode()).digest()[:8], "big", signed=True)


def resolve(target: str) -> Callable[[], int]:
    """The function named by 'package.module:function'."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@contextlib.contextmanager
def job_lock(job_id: str) -> Iterator[bool]:
    """Hold the job's lock for the block; yields False (and holds nothing) if another run has it."""
    from app.extensions import db

    engine = db.engine
    if engine.dialect.name != "postgresql":
        with _local_lock(job_id) as acquired:
            yield acquired
        return
    key = advisory_key(job_id)
    connection = engine.connect()
    try:
        acquired = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        connection.commit()  # no transaction stays open on the lock's connection
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
                except Exception:
                    # The lock lives as long as the database session: a dead connection releases it,
                    # a live one must not go back to the pool still holding it.
                    connection.invalidate()
                    raise
    finally:
        connection.close()


@contextlib.contextmanager
def _local_lock(job_id: str) -> Iterator[bool]:
    with _local_locks_guard:
        lock = _local_locks.setdefault(job_id, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def run_job(app: Flask, job_id: str, target: str) -> int | None:
    """Run `target` once for `job_id` (the scheduler's entry point); None if skipped or failed."""
    started = time.perf_counter()
    with app.app_context():
        from app.extensions import db

        try:
            func = resolve(target)
        except (ImportError, AttributeError) as exc:
            _log(logging.ERROR, "job.missing", job_id, target=target, error=str(exc))
            return None
        try:
            with job_lock(job_id) as acquired:
                if not acquired:
                    _log(logging.INFO, "job.skipped", job_id, reason="locked elsewhere")
                    JOB_RUNS.labels(job_id, "skipped").inc()
                    return None
                count = func()
        except Exception:
            db.session.rollback()
            _log(logging.ERROR, "job.failed", job_id, exc_info=True, target=target)
            JOB_RUNS.labels(job_id, "failed").inc()
            JOB_SECONDS.labels(job_id).observe(time.perf_counter() - started)
            return None
        finally:
            db.session.remove()
    JOB_RUNS.labels(job_id, "ok").inc()
    JOB_SECONDS.labels(job_id).observe(time.perf_counter() - started)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    _log(logging.INFO, "job.finished", job_id, count=count, duration_ms=duration_ms)
    return count


def _log(level: int, event: str, job_id: str, *, exc_info: bool = False, **fields: object) -> None:
    """One log line per run: a short message, and the fields as top-level keys of the JSON line."""
    summary = " ".join(f"{k}={v}" for k, v in fields.items())
    log.log(
        level,
        f"{event} {job_id} {summary}".strip(),
        exc_info=exc_info,
        extra={"job": job_id, "fields": {"event": event, "job": job_id, **fields}},
    )
