"""A pooled PostgreSQL connection is checked at checkout without a round trip.

SQLAlchemy's `pool_pre_ping` sends a statement and waits for its answer at every checkout: one round
trip per transaction, on every request (a hold pays it once, a kiosk ticket twice). A server that ended
a connection (a restart, `pg_terminate_backend`, an idle timeout) has sent its FATAL notice and closed
the socket, so an idle pooled connection whose socket has anything to read is dead: the checkout event
raises `DisconnectionError`, and the pool replaces it with a fresh one (SQLAlchemy's documented
"pessimistic" hook). A connection cut without a word (a host gone) is caught by the first statement
instead: that request is a 503, SQLAlchemy invalidates the pool, and the next request connects anew.
"""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError


def closed_by_server(dbapi_connection: Any) -> bool:
    """True when an idle psycopg connection is broken or its server has spoken (EOF, a FATAL notice)."""
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        return True
    try:
        fd = dbapi_connection.pgconn.socket
    except Exception:  # psycopg raises once the libpq connection is gone
        return True
    # select() with a zero timeout does not wait (nor does gevent's, which tries the real one first).
    readable, _, failed = select.select([fd], [], [fd], 0)
    return bool(readable or failed)


def _on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    if closed_by_server(dbapi_connection):
        raise DisconnectionError("the server closed this pooled connection")


def check_connections_at_checkout(engine: Engine) -> None:
    """Replace pooled PostgreSQL connections the server has closed, at checkout, without a round trip."""
    if engine.dialect.name == "postgresql" and not event.contains(engine, "checkout", _on_checkout):
        event.listen(engine, "checkout", _on_checkout)
