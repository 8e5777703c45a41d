"""Helpers shared by the availability tests: a slot search over HTTP and a count of SQL statements."""

from contextlib import contextmanager

from sqlalchemy import event

from app.extensions import db

US_WEEK = {d: [["09:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def search(client, offering, headers=None, **params):
    query = "&".join(f"{k}={v}" for k, v in {"service": offering.service_code, **params}.items())
    return client.get(f"/api/v1/centres/{offering.centre_id}/slots?{query}", headers=headers or {})


@contextmanager
def count_queries(app):
    """The SQL statements the app runs inside the block (not BEGIN, PRAGMA or savepoints)."""
    with app.app_context():
        engine = db.engine
    statements = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
