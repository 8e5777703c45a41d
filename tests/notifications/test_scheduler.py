"""The scheduler's wiring and the per-job lock: every job once, even with two schedulers running."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import click
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import func, select

from app import clock, scheduler
from app.extensions import db
from app.jobs import advisory_key, job_lock, run_job
from booking.models import Booking
from notifications.models import Notification

UTC = dt.UTC
EXPECTED_JOBS = {
    "generate_slots": "booking.tasks:generate_slots",
    "expire_holds": "booking.tasks:expire_holds",
    "mark_no_shows": "booking.tasks:mark_no_shows",
    "run_due_draws": "booking.tasks:run_due_draws",
    "end_past_waits": "booking.tasks:end_past_waits",
    "send_reminders": "booking.tasks:send_reminders",
    "dispatch_outbox": "notifications.tasks:dispatch_outbox",
    "close_day": "ticketing.tasks:close_day",
    "expire_unanswered_calls": "ticketing.tasks:expire_unanswered_calls",
    "prune_idempotency_keys": "app.idempotency:prune_idempotency_keys",
    "prune_login_lockouts": "app.accounts.services:prune_login_lockouts",
}


def test_every_job_is_registered_once_with_fixed_ids_and_safe_defaults(make_app):
    app = make_app(JOB_DISPATCH_OUTBOX_SECONDS="7", SCHEDULER_MISFIRE_GRACE_SECONDS="45")
    background = scheduler.build_scheduler(app, blocking=False)
    blocking = scheduler.build_scheduler(app, blocking=True)

    assert isinstance(background, BackgroundScheduler) and isinstance(blocking, BlockingScheduler)
    jobs = {job.id: job for job in background.get_jobs()}
    assert {job_id: job.name for job_id, job in jobs.items()} == EXPECTED_JOBS
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 45)
        assert job.func is run_job and job.args[1:] == (job.id, EXPECTED_JOBS[job.id])
    assert jobs["dispatch_outbox"].trigger.interval == dt.timedelta(seconds=7)
    assert {job.id for job in blocking.get_jobs()} == set(EXPECTED_JOBS)


def test_the_scheduler_command_is_registered_and_tests_never_start_one(make_app):
    app = make_app(SCHEDULER_ENABLED="true")  # not under `flask run`: nothing starts
    assert "scheduler" in app.cli.commands
    assert scheduler._background is None


def test_only_the_serving_flask_run_process_starts_the_in_process_scheduler(monkeypatch):
    def serving(info_name, **params):
        with click.Context(click.Command(info_name), info_name=info_name) as context:
            context.params.update(params)
            return scheduler.serving_with_flask_run()

    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    assert serving("run", reload=False) is True  # make run: flask run --no-reload
    assert serving("run", reload=True) is False  # the reloader's watcher process
    assert serving("flask") is False  # `flask db upgrade`, `flask scheduler`... load the app here
    assert scheduler.serving_with_flask_run() is False  # gunicorn: no click context
    monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    assert serving("run", reload=True) is True  # the reloader's serving child


def test_the_in_process_scheduler_starts_once_per_process(make_app):
    app = make_app(JOB_DISPATCH_OUTBOX_SECONDS="3600")
    try:
        first = scheduler.start_background_scheduler(app)
        second = scheduler.start_background_scheduler(app)
        assert first is not None and first.running
        assert second is None
    finally:
        scheduler.stop_background_scheduler()
    assert scheduler._background is None


def test_a_missing_job_module_is_logged_not_fatal(app, caplog):
    with caplog.at_level(logging.INFO, logger="sanad.jobs"):
        assert run_job(app, "ghost", "no_such_domain.tasks:ghost") is None
        assert run_job(app, "ghost2", "notifications.tasks:no_such_job") is None
    events = [r.fields["event"] for r in caplog.records if r.name == "sanad.jobs"]
    assert events == ["job.missing", "job.missing"]


def test_a_failing_job_is_logged_and_the_next_run_still_works(app, caplog):
    with caplog.at_level(logging.INFO, logger="sanad.jobs"):
        assert run_job(app, "broken", "json:loads") is None  # TypeError: missing argument
        assert run_job(app, "dispatch_outbox", "notifications.tasks:dispatch_outbox") == 0
    lines = [r.fields for r in caplog.records if r.name == "sanad.jobs"]
    assert [line["event"] for line in lines] == ["job.failed", "job.finished"]
    assert lines[1]["job"] == "dispatch_outbox" and lines[1]["count"] == 0


def test_each_run_is_one_json_line_with_the_job_id_and_its_count(app, caplog):
    from app.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="sanad.jobs"):
        run_job(app, "send_reminders", "booking.tasks:send_reminders")
    [record] = [r for r in caplog.records if r.name == "sanad.jobs"]
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "job.finished" and line["job"] == "send_reminders" and line["count"] == 0
    assert line["logger"] == "sanad.jobs" and "duration_ms" in line


def test_a_job_whose_lock_is_held_elsewhere_is_skipped(app, caplog):
    holding, release = threading.Event(), threading.Event()

    def hold():
        with app.app_context(), job_lock("send_reminders") as acquired:
            assert acquired
            holding.set()
            release.wait(10)

    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(hold)
        assert holding.wait(10)
        try:
            with caplog.at_level(logging.INFO, logger="sanad.jobs"):
                assert run_job(app, "send_reminders", "booking.tasks:send_reminders") is None
        finally:
            release.set()
        holder.result()
    assert run_job(app, "send_reminders", "booking.tasks:send_reminders") == 0  # released
    skipped = [r.fields for r in caplog.records if r.name == "sanad.jobs"]
    assert skipped[0]["event"] == "job.skipped" and skipped[0]["job"] == "send_reminders"


def test_advisory_keys_are_stable_and_distinct():
    keys = {advisory_key(job_id) for job_id in EXPECTED_JOBS}
    assert len(keys) == len(EXPECTED_JOBS)
    assert advisory_key("send_reminders") == advisory_key("send_reminders")
    assert all(-(2**63) <= k < 2**63 for k in keys)


def _two_schedulers(app, job_ids, rounds=3):
    """Two 'scheduler processes' (threads with their own app contexts) run the same jobs at once."""
    barrier = threading.Barrier(2)

    def scheduler_process(_):
        results = []
        for _ in range(rounds):
            for job_id in job_ids:
                barrier.wait(10)
                results.append((job_id, run_job(app, job_id, EXPECTED_JOBS[job_id])))
        return results

    with ThreadPoolExecutor(2) as pool:
        return [r for rs in pool.map(scheduler_process, range(2)) for r in rs]


def _two_unlocked(app, func, rounds=3):
    """The job functions themselves, twice at once with no lock: idempotency alone must hold."""
    barrier = threading.Barrier(2)

    def run(_):
        counts = []
        for _ in range(rounds):
            barrier.wait(10)
            with app.app_context():
                try:
                    counts.append(func())
                finally:
                    db.session.remove()
        return counts

    with ThreadPoolExecutor(2) as pool:
        return [c for cs in pool.map(run, range(2)) for c in cs]


@pytest.mark.postgres_only
def test_two_schedulers_at_once_send_each_reminder_once_and_mark_each_no_show_once(app, make, visit):
    offering = make.offering(make.centre(), make.service())
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    clock.travel_to(now)
    citizens = [make.citizen() for _ in range(6)]
    for i, citizen in enumerate(citizens[:3]):  # due for the 24 h reminder
        visit(citizen, offering, now + dt.timedelta(hours=20, minutes=i))
    for i, citizen in enumerate(citizens[3:]):  # due for the 2 h reminder
        visit(citizen, offering, now + dt.timedelta(hours=1, minutes=i))
    for i in range(6):  # missed yesterday: no-shows to mark (one active booking per citizen and group)
        visit(make.citizen(), offering, now - dt.timedelta(days=1, minutes=i))

    results = _two_schedulers(app, ["send_reminders", "mark_no_shows", "dispatch_outbox"])

    def state():
        kinds = db.session.execute(
            select(Notification.kind, func.count()).group_by(Notification.kind).order_by(Notification.kind)
        ).all()
        no_shows = db.session.scalar(select(func.count()).where(Booking.status == "no_show"))
        return dict(kinds), no_shows

    kinds, no_shows = make.call(state)
    assert kinds.get("reminder_24h") == 3 and kinds.get("reminder_2h") == 3
    assert no_shows == 6
    reminder_counts = [c for job, c in results if job == "send_reminders" and c]
    no_show_counts = [c for job, c in results if job == "mark_no_shows" and c]
    assert sum(reminder_counts) == 6, repr(results)  # counted once in all, whoever did it
    assert sum(no_show_counts) >= 6 and len(no_show_counts) == 1


@pytest.mark.postgres_only
def test_reminder_job_twice_at_once_without_the_lock_still_sends_each_once(app, make, visit):
    offering = make.offering(make.centre(), make.service())
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    clock.travel_to(now)
    for i in range(10):
        visit(make.citizen(), offering, now + dt.timedelta(hours=3 + i))
    from booking.tasks import send_reminders

    counts = _two_unlocked(app, send_reminders)

    assert sum(counts) == 10
    assert make.call(lambda: db.session.scalar(select(func.count()).select_from(Notification))) == 10
