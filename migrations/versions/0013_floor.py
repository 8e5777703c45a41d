"""the centre floor: tickets' public ids, counter pauses, and one open counter per clerk

Revision ID: 0013_floor
Revises: 0012_login_lockouts
"""

import datetime as dt
import secrets

import sqlalchemy as sa
from alembic import op

import app.database

revision = "0013_floor"
down_revision = "0012_login_lockouts"
branch_labels = None
depends_on = None

BACKFILL_BATCH = 1000


def _backfill_public_ids() -> None:
    """Every existing ticket gets its own unguessable public id (the model's default does it for new ones)."""
    conn = op.get_bind()
    tickets = sa.table("tickets", sa.column("id", sa.Integer), sa.column("public_id", sa.String))
    ids = [row.id for row in conn.execute(sa.select(tickets.c.id).where(tickets.c.public_id.is_(None)))]
    update = (
        sa.update(tickets).where(tickets.c.id == sa.bindparam("ticket")).values(public_id=sa.bindparam("pid"))
    )
    for start in range(0, len(ids), BACKFILL_BATCH):
        batch = ids[start : start + BACKFILL_BATCH]
        conn.execute(update, [{"ticket": i, "pid": secrets.token_urlsafe(12)} for i in batch])


def _close_extra_sessions() -> None:
    """Before the one-counter-per-clerk index: a clerk's older open sessions are closed (the newest stays)."""
    sessions = sa.table(
        "counter_sessions",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("closed_at", app.database.UTCDateTime(timezone=True)),
    )
    newest = (
        sa.select(sa.func.max(sessions.c.id))
        .where(sessions.c.closed_at.is_(None))
        .group_by(sessions.c.account_id)
    )
    op.get_bind().execute(
        sa.update(sessions)
        .where(sessions.c.closed_at.is_(None), sessions.c.id.not_in(newest))
        .values(closed_at=sa.bindparam("now", type_=app.database.UTCDateTime(timezone=True))),
        {"now": dt.datetime.now(dt.UTC)},
    )


def upgrade():
    op.add_column("tickets", sa.Column("public_id", sa.String(length=24), nullable=True))
    _backfill_public_ids()
    with op.batch_alter_table("tickets") as batch:
        batch.alter_column("public_id", existing_type=sa.String(length=24), nullable=False)
    op.create_index("ix_tickets_public_id", "tickets", ["public_id"], unique=True)

    op.add_column(
        "counter_sessions", sa.Column("paused_at", app.database.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column("counter_sessions", sa.Column("pause_reason", sa.String(length=200), nullable=True))
    _close_extra_sessions()
    op.create_index(
        "ix_counter_sessions_one_open_per_clerk",
        "counter_sessions",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )


def downgrade():
    op.drop_index("ix_counter_sessions_one_open_per_clerk", table_name="counter_sessions")
    op.drop_column("counter_sessions", "pause_reason")
    op.drop_column("counter_sessions", "paused_at")
    op.drop_index("ix_tickets_public_id", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("public_id")
