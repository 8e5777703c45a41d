"""The migrated schema is exactly the models' schema (tests run on the migrated one)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext


def test_migrations_match_the_models(app):
    with app.app_context():
        from app.extensions import db

        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, db.metadata)
    assert diff == [], diff
