"""Fixtures: a fresh app per test on the migrated schema (SQLite + embedded Redis, or PostgreSQL + Redis).

`TEST_DATABASE_URL` / `TEST_REDIS_URL` select PostgreSQL and Redis; otherwise a SQLite file and the
embedded Redis are used. With `CI=true`, stores that cannot be reached fail the run instead of skipping.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app import clock, create_app
from app.config import normalise_database_url

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
ON_CI = os.environ.get("CI", "").lower() == "true"
_TMP = Path(tempfile.mkdtemp(prefix="sanad-tests-"))
DATABASE_URL = (
    normalise_database_url(TEST_DATABASE_URL) if TEST_DATABASE_URL else f"sqlite:///{_TMP / 'test.db'}"
)
IS_POSTGRES = DATABASE_URL.startswith("postgresql")

BASE_OVERRIDES = {
    "APP_ENV": "test",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": TEST_REDIS_URL or "",
    "INSTANCE_PATH": str(_TMP),
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_COST": "8192",
    "ARGON2_PARALLELISM": "1",
    "RATELIMIT_LOGIN": "1000 per minute",
    "RATELIMIT_OTP": "1000 per minute",
    "RATELIMIT_SEARCH": "10000 per minute",
    "RATELIMIT_HOLDS": "10000 per minute",
    "RATELIMIT_DEFAULT": "100000 per minute",
    "LOG_JSON": "false",
    "LOG_LEVEL": "WARNING",
    "SMS_SENDER": "console",
}


def pytest_report_header(config) -> str:
    database = "postgresql" if IS_POSTGRES else "sqlite"
    return f"sanad backend: database={database} redis={TEST_REDIS_URL or 'embedded'}"


def pytest_collection_modifyitems(config, items) -> None:
    if IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="PostgreSQL-only (runs in the PostgreSQL pass of `make test`)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def _check_stores() -> None:
    if TEST_DATABASE_URL:
        try:
            with create_engine(DATABASE_URL).connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            pytest.exit(f"TEST_DATABASE_URL is not reachable: {exc}", returncode=3)
    if TEST_REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            pytest.exit(f"TEST_REDIS_URL is not reachable: {exc}", returncode=3)


@pytest.fixture(scope="session")
def migrated_database() -> str:
    """Apply the migrations once per run: the tests see the migrated schema, not create_all()."""
    _check_stores()
    app = create_app(BASE_OVERRIDES)
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        from app.extensions import db

        if IS_POSTGRES:
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        if IS_POSTGRES:
            # The migrations must also go down cleanly, then up again.
            downgrade(revision="base")
            upgrade()
        db.engine.dispose()
    return DATABASE_URL


def _clear_database(db) -> None:
    from sqlalchemy import inspect

    # Only migrated tables exist; a model without a migration is caught by test_migrations.
    existing = set(inspect(db.engine).get_table_names())
    tables = [t.name for t in db.metadata.sorted_tables if t.name in existing]
    with db.engine.begin() as conn:
        if IS_POSTGRES:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                conn.execute(text(f'DELETE FROM "{name}"'))


@pytest.fixture
def make_app(migrated_database):
    """Build apps on the migrated database (tests can pass extra environment overrides)."""
    built = []

    def build(**overrides: str):
        app = create_app({**BASE_OVERRIDES, **overrides})
        from app.extensions import limiter

        # One Limiter object serves every app built in this process; a previous test's dead Redis must
        # not leave it in fallback mode for this app's (live) storage. Production has one app per process.
        limiter._storage_dead = False
        built.append(app)
        return app

    yield build
    for app in built:
        hub = app.extensions.get("queue_stream_hub")
        if hub is not None:  # its listener thread polls Redis until told to stop
            hub.stop()
        with app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app) -> Iterator:
    """A fresh app per test, with an empty database and Redis.

    No app context stays pushed during the test: each request gets its own, as in production
    (a shared one would share the SQLAlchemy session and `g` between requests).
    """
    app = make_app()
    with app.app_context():
        from app.extensions import db, limiter
        from app.redis_client import get_redis

        _clear_database(db)
        get_redis().flushdb()
        limiter.reset()
    yield app
    clock.reset()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make(app):
    """Factories (see tests/factories.py: each call has its own app context)."""
    from tests.factories import Make

    return Make(app)


@pytest.fixture
def visit(make):
    """visit(account, offering, start) -> booking id of a confirmed booking starting at `start` (UTC)."""

    def create(account, offering, start, **kw):
        return make.confirmed_booking(account, offering, start, **kw).id

    return create


@pytest.fixture
def ctx(app):
    """An app context for tests that call services directly and send no requests."""
    with app.app_context():
        yield app
        from app.extensions import db

        db.session.remove()


@pytest.fixture
def dead_redis_url() -> Iterator[str]:
    """A Redis URL nothing answers: a port the OS gave us, held bound but never listening."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused, nobody else can take it
        yield f"redis://127.0.0.1:{held.getsockname()[1]}/0"


@pytest.fixture
def dead_database_url() -> Iterator[str]:
    """A PostgreSQL URL nothing answers (a port held bound, never listening): the database is down."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"postgresql+psycopg://postgres@127.0.0.1:{held.getsockname()[1]}/sanad"
