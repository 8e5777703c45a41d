"""`statement_connection`: one autocommit connection per app context, never two connections at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from app.dialect import statement_connection
from app.extensions import db


@pytest.mark.postgres_only
def test_one_autocommit_connection_serves_a_contexts_statements_and_goes_back_before_the_session(app):
    with app.app_context():
        pool = db.engine.pool
        idle = pool.checkedout()
        with statement_connection() as first:
            first.execute(text("SELECT 1"))
        with statement_connection() as second:
            second.execute(text("SELECT 1"))
            assert second is first  # one checkout for both
            assert second.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
        assert pool.checkedout() == idle + 1
        db.session.execute(select(1))  # the session begins: the autocommit connection went back first
        assert pool.checkedout() == idle + 1
        assert first.closed
        with statement_connection() as inside:  # inside the session's transaction: its connection
            assert inside is db.session.connection()
        db.session.rollback()
    with app.app_context():
        assert db.engine.pool.checkedout() == idle  # nothing kept past the context


@pytest.mark.postgres_only
def test_after_an_error_the_next_statement_gets_a_fresh_connection(app):
    with app.app_context():
        with pytest.raises(Exception), statement_connection() as broken:
            broken.execute(text("SELECT 1/0"))
        assert broken.closed
        with statement_connection() as fresh:
            assert fresh is not broken
            assert fresh.execute(text("SELECT 2")).scalar() == 2
