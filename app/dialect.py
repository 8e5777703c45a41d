"""What differs between PostgreSQL and SQLite, in one place: which one is in use, insert-if-absent, locks.

SQLite serialises every write transaction (`BEGIN IMMEDIATE`, see `app.database`), so row locks and
advisory locks are PostgreSQL-only; the callers' logic is the same on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import g, has_app_context
from sqlalchemy import Select, event, text
from sqlalchemy.dialects import postgresql, sqlite

from app.database import is_postgres
from app.extensions import db


def on_postgres() -> bool:
    """Whether the session's database is PostgreSQL."""
    return is_postgres(db.session.get_bind())


@contextmanager
def statement_connection() -> Iterator[Any]:
    """Where one statement that needs no transaction around it runs: the session's connection while it has
    a transaction (the statement sees what it wrote, and is part of it), else, on PostgreSQL, a pooled
    connection of its own in autocommit (a BEGIN and a COMMIT or ROLLBACK around one statement are two round
    trips that change nothing; the session is left as it was).

    That autocommit connection is kept for the rest of the app context (a request's other statements use it
    too, without a pool checkout and an isolation-level change each), and given back at its end, or as soon
    as the session begins a transaction: a request never holds two connections at once, so a busy pool
    cannot wedge requests that each wait for their second."""
    session = db.session()  # the request's Session itself (the scoped proxy lacks in_transaction)
    engine = session.get_bind()
    if is_postgres(engine) and not session.in_transaction():
        connection = g.get(_AUTOCOMMIT)
        if connection is None or connection.closed or connection.invalidated:
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            setattr(g, _AUTOCOMMIT, connection)
        try:
            yield connection
        except BaseException:
            release_statement_connection()  # after an error, a fresh one (the pool checks it at checkout)
            raise
    else:
        yield session.connection()


_AUTOCOMMIT = "_statement_connection"


def release_statement_connection(*_: Any) -> None:
    """Give the app context's autocommit connection (`statement_connection`) back to the pool."""
    connection = g.pop(_AUTOCOMMIT, None)
    if connection is not None:
        connection.close()


def register_statement_connections(app: Any) -> None:
    """Autocommit connections given back at the end of each app context, and when a session begins."""
    app.teardown_appcontext(release_statement_connection)
    if not event.contains(db.session, "after_transaction_create", _session_begins):  # one per process
        event.listen(db.session, "after_transaction_create", _session_begins)


def _session_begins(session: Any, transaction: Any) -> None:
    if transaction.parent is None and has_app_context():  # the outermost one, before it takes a connection
        release_statement_connection()


def dialect_insert(model: Any):
    """The dialect's `INSERT`, which has `on_conflict_do_nothing` / `on_conflict_do_update`."""
    return (postgresql if on_postgres() else sqlite).insert(model)


def insert_ignoring(model: Any, *, index_elements: list[str], **values: Any):
    """`INSERT … ON CONFLICT (index_elements) DO NOTHING`: a duplicate is skipped by the database itself,
    without an error that would break the caller's transaction and without a check-then-insert race."""
    return dialect_insert(model).values(**values).on_conflict_do_nothing(index_elements=index_elements)


def for_update(query: Select, *, skip_locked: bool = False) -> Select:
    """`SELECT … FOR UPDATE` on PostgreSQL; the query unchanged on SQLite (already serial)."""
    return query.with_for_update(skip_locked=skip_locked) if on_postgres() else query


def advisory_xact_lock(key: str, namespace: int) -> None:
    """Serialise transactions on `key` (a transaction-scoped advisory lock on PostgreSQL)."""
    if on_postgres():
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, :n))"), {"k": key, "n": namespace}
        )
