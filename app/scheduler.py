"""Every scheduled job in one place (APScheduler 3.x), and the two ways to run them.

* Production: one dedicated process, `flask --app wsgi scheduler` (a BlockingScheduler).
* `make run`: `SCHEDULER_ENABLED=true flask run --no-reload` starts a BackgroundScheduler inside the
  one serving process, once (a guard refuses a second start; gunicorn workers and other `flask`
  commands never start one).

APScheduler's job store is in memory: it is not shared between processes and is not used for
de-duplication (its FAQ). Each run goes through `app.jobs.run_job`, which takes a PostgreSQL
advisory lock per job, and every job is idempotent, so a second scheduler started by mistake does no
harm. Targets are resolved at run time, so a missing module logs an error instead of stopping the
scheduler.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
from dataclasses import dataclass

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from flask.helpers import get_debug_flag

from app.jobs import run_job

log = logging.getLogger("sanad.scheduler")


@dataclass(frozen=True, slots=True)
class JobSpec:
    id: str  # fixed: also the advisory-lock key
    target: str  # "module:function", resolved at run time
    interval_setting: str  # app.config key holding the interval in seconds


JOBS: tuple[JobSpec, ...] = (
    JobSpec("generate_slots", "booking.tasks:generate_slots", "JOB_GENERATE_SLOTS_SECONDS"),
    JobSpec("expire_holds", "booking.tasks:expire_holds", "JOB_EXPIRE_HOLDS_SECONDS"),
    JobSpec("mark_no_shows", "booking.tasks:mark_no_shows", "JOB_MARK_NO_SHOWS_SECONDS"),
    JobSpec("run_due_draws", "booking.tasks:run_due_draws", "JOB_RUN_DUE_DRAWS_SECONDS"),
    JobSpec("end_past_waits", "booking.tasks:end_past_waits", "JOB_END_PAST_WAITS_SECONDS"),
    JobSpec("send_reminders", "booking.tasks:send_reminders", "JOB_SEND_REMINDERS_SECONDS"),
    JobSpec("dispatch_outbox", "notifications.tasks:dispatch_outbox", "JOB_DISPATCH_OUTBOX_SECONDS"),
    JobSpec("close_day", "ticketing.tasks:close_day", "JOB_CLOSE_DAY_SECONDS"),
    JobSpec(
        "expire_unanswered_calls",
        "ticketing.tasks:expire_unanswered_calls",
        "JOB_EXPIRE_UNANSWERED_CALLS_SECONDS",
    ),
    JobSpec(
        "prune_idempotency_keys",
        "app.idempotency:prune_idempotency_keys",
        "JOB_PRUNE_IDEMPOTENCY_KEYS_SECONDS",
    ),
    JobSpec(
        "prune_login_lockouts",
        "app.accounts.services:prune_login_lockouts",
        "JOB_PRUNE_LOGIN_LOCKOUTS_SECONDS",
    ),
)
FIRST_RUN_DELAY = dt.timedelta(seconds=2)  # every job runs once soon after start, then on its interval

_background: BackgroundScheduler | None = None
_background_lock = threading.Lock()


def build_scheduler(app: Flask, *, blocking: bool) -> BaseScheduler:
    """A scheduler with every job registered (not started)."""
    scheduler_class = BlockingScheduler if blocking else BackgroundScheduler
    job_options = {
        "coalesce": True,  # runs missed while busy or down collapse into one
        "max_instances": 1,  # a slow run is never overlapped by the next one in this process
        "misfire_grace_time": int(app.config["SCHEDULER_MISFIRE_GRACE_SECONDS"]),
    }
    scheduler = scheduler_class(timezone=dt.UTC, job_defaults=job_options)
    # app.jobs logs one structured line per run; APScheduler's own INFO lines would double them.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    first_run = dt.datetime.now(dt.UTC) + FIRST_RUN_DELAY  # APScheduler's clock, not app.clock
    for spec in JOBS:
        scheduler.add_job(
            run_job,
            trigger=IntervalTrigger(seconds=int(app.config[spec.interval_setting]), timezone=dt.UTC),
            args=(app, spec.id, spec.target),
            id=spec.id,
            name=spec.target,
            replace_existing=True,
            next_run_time=first_run,
            **job_options,
        )
    return scheduler


def start_background_scheduler(app: Flask) -> BackgroundScheduler | None:
    """Start the in-process scheduler once per process; None if one is already running."""
    global _background
    with _background_lock:
        if _background is not None and _background.running:
            log.warning(
                "scheduler already running in this process",
                extra={"fields": {"event": "scheduler.already_running", "pid": os.getpid()}},
            )
            return None
        scheduler = build_scheduler(app, blocking=False)
        scheduler.start()
        _background = scheduler
    _log_started("in-process")
    return scheduler


def stop_background_scheduler() -> None:
    """Stop the in-process scheduler if this process runs one."""
    global _background
    with _background_lock:
        if _background is not None and _background.running:
            _background.shutdown(wait=False)
        _background = None


def run_blocking_scheduler(app: Flask) -> None:
    """The production scheduler process: runs until SIGTERM or Ctrl-C."""
    scheduler = build_scheduler(app, blocking=True)

    def _stop(signum, frame) -> None:
        log.info("scheduler stopping", extra={"fields": {"event": "scheduler.stopping", "signal": signum}})
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, _stop)
    _log_started("dedicated")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)


def _log_started(mode: str) -> None:
    jobs = [j.id for j in JOBS]
    log.info(
        f"scheduler started ({mode}): {', '.join(jobs)}",
        extra={"fields": {"event": "scheduler.started", "mode": mode, "pid": os.getpid(), "jobs": jobs}},
    )


def serving_with_flask_run() -> bool:
    """Whether this process is the one `flask run` serves from (not its reloader's watcher)."""
    context = click.get_current_context(silent=True)
    if context is None or context.info_name != "run":
        return False  # gunicorn, another `flask` command, or a test
    reload = context.params.get("reload")
    if reload is None:  # flask run's default: the reloader follows debug mode
        reload = get_debug_flag()
    return not reload or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


def init_app(app: Flask) -> None:
    """Register `flask scheduler`, and start the in-process scheduler under `flask run` if enabled."""

    @app.cli.command("scheduler")
    def scheduler_command() -> None:
        """Run every scheduled job in this process until stopped (production: exactly one such process)."""
        run_blocking_scheduler(app)

    if app.config.get("SCHEDULER_ENABLED") and serving_with_flask_run():
        start_background_scheduler(app)
