"""release day: draws, draw entries, waitlists; offerings.allocation; bookings carry their entry

Revision ID: 0008_release
Revises: 0007_registry_guardianships
"""

import sqlalchemy as sa
from alembic import op

import app.database

revision = "0008_release"
down_revision = "0007_registry_guardianships"
branch_labels = None
depends_on = None

_HELD_BEFORE = "status = 'held'"
# Seats handed out by a draw or a waitlist are held too, but they do not use up the citizen's one hold.
_HELD = "status = 'held' AND draw_entry_id IS NULL AND waitlist_entry_id IS NULL"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    op.create_table(
        "draws",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offering_id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("service_group", sa.String(length=64), nullable=False),
        sa.Column("days_from", sa.Date(), nullable=False),
        sa.Column("days_to", sa.Date(), nullable=False),
        sa.Column("entries_open_at", app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entries_close_at", app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirm_hours", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("seed_commitment", sa.String(length=64), nullable=False),
        sa.Column("seats_snapshot", sa.JSON(), nullable=True),
        sa.Column("waitlist_open", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("drawn_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'drawing', 'drawn', 'cancelled')", name=op.f("ck_draws_status")
        ),
        sa.CheckConstraint("confirm_hours BETWEEN 1 AND 168", name=op.f("ck_draws_confirm_hours_range")),
        sa.CheckConstraint("days_to >= days_from", name=op.f("ck_draws_days_order")),
        sa.CheckConstraint("entries_close_at > entries_open_at", name=op.f("ck_draws_entries_window")),
        sa.ForeignKeyConstraint(["centre_id"], ["centres.id"], name=op.f("fk_draws_centre_id_centres")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["accounts.id"], name=op.f("fk_draws_created_by_accounts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["offering_id"], ["offerings.id"], name=op.f("fk_draws_offering_id_offerings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draws")),
    )
    with op.batch_alter_table("draws", schema=None) as batch_op:
        batch_op.create_index("ix_draws_offering_id_status", ["offering_id", "status"], unique=False)
        batch_op.create_index(
            "ix_draws_status_entries_close_at", ["status", "entries_close_at"], unique=False
        )

    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("offering_id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("service_group", sa.String(length=64), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("part_of_day", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("closed_reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("offered_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("left_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "part_of_day IN ('any', 'morning', 'afternoon')", name=op.f("ck_waitlist_entries_part_of_day")
        ),
        sa.CheckConstraint(
            "status IN ('waiting', 'offered', 'left', 'lapsed', 'closed')",
            name=op.f("ck_waitlist_entries_status"),
        ),
        sa.CheckConstraint("date_to >= date_from", name=op.f("ck_waitlist_entries_dates_order")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_waitlist_entries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centres.id"], name=op.f("fk_waitlist_entries_centre_id_centres")
        ),
        sa.ForeignKeyConstraint(
            ["offering_id"],
            ["offerings.id"],
            name=op.f("fk_waitlist_entries_offering_id_offerings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_waitlist_entries_offering_id_status_id", ["offering_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            "uq_waitlist_waiting_per_group",
            ["account_id", "service_group"],
            unique=True,
            postgresql_where=sa.text("status = 'waiting'"),
            sqlite_where=sa.text("status = 'waiting'"),
        )

    op.create_table(
        "draw_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draw_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("national_id", sa.String(length=20), nullable=False),
        sa.Column("service_group", sa.String(length=64), nullable=False),
        sa.Column("entry_token", sa.String(length=32), nullable=False),
        sa.Column("part_of_day", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("planned_slot_id", sa.Integer(), nullable=True),
        sa.Column("excluded_reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "part_of_day IN ('any', 'morning', 'afternoon')", name=op.f("ck_draw_entries_part_of_day")
        ),
        sa.CheckConstraint(
            "status IN ('entered', 'won', 'waitlisted', 'offered', 'lost', 'withdrawn', 'cancelled')",
            name=op.f("ck_draw_entries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_draw_entries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["draw_id"], ["draws.id"], name=op.f("fk_draw_entries_draw_id_draws"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["planned_slot_id"], ["slots.id"], name=op.f("fk_draw_entries_planned_slot_id_slots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draw_entries")),
        sa.UniqueConstraint("draw_id", "national_id", name=op.f("uq_draw_entries_draw_id_national_id")),
        sa.UniqueConstraint("entry_token", name=op.f("uq_draw_entries_entry_token")),
    )
    with op.batch_alter_table("draw_entries", schema=None) as batch_op:
        batch_op.create_index("ix_draw_entries_account_id_status", ["account_id", "status"], unique=False)
        batch_op.create_index(
            "ix_draw_entries_draw_id_status_rank", ["draw_id", "status", "rank"], unique=False
        )

    for column, table in (("draw_entry_id", "draw_entries"), ("waitlist_entry_id", "waitlist_entries")):
        fk = f"fk_bookings_{column}_{table}"
        if _postgres():
            op.add_column("bookings", sa.Column(column, sa.Integer(), nullable=True))
            op.create_foreign_key(op.f(fk), "bookings", table, [column], ["id"], ondelete="SET NULL")
        else:  # SQLite: the table is rebuilt with the new column and its foreign key
            with op.batch_alter_table("bookings") as batch_op:
                batch_op.add_column(sa.Column(column, sa.Integer(), nullable=True))
                batch_op.create_foreign_key(fk, table, [column], ["id"], ondelete="SET NULL")
        op.create_index(f"uq_bookings_{column}", "bookings", [column], unique=True)
    op.drop_index("uq_bookings_one_hold", table_name="bookings")
    op.create_index(
        "uq_bookings_one_hold",
        "bookings",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text(_HELD),
        sqlite_where=sa.text(_HELD),
    )
    op.add_column(
        "offerings",
        sa.Column("allocation", sa.String(length=12), server_default="first_come", nullable=False),
    )
    if _postgres():
        op.create_check_constraint(
            op.f("ck_offerings_allocation"), "offerings", "allocation IN ('first_come', 'draw')"
        )


def downgrade():
    if _postgres():
        op.drop_constraint(op.f("ck_offerings_allocation"), "offerings", type_="check")
    with op.batch_alter_table("offerings") as batch_op:
        batch_op.drop_column("allocation")
    op.drop_index("uq_bookings_one_hold", table_name="bookings")
    op.create_index(
        "uq_bookings_one_hold",
        "bookings",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text(_HELD_BEFORE),
        sqlite_where=sa.text(_HELD_BEFORE),
    )
    for column, table in (("waitlist_entry_id", "waitlist_entries"), ("draw_entry_id", "draw_entries")):
        op.drop_index(f"uq_bookings_{column}", table_name="bookings")
        if _postgres():
            op.drop_constraint(op.f(f"fk_bookings_{column}_{table}"), "bookings", type_="foreignkey")
        op.drop_column("bookings", column)
    with op.batch_alter_table("draw_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_draw_entries_draw_id_status_rank")
        batch_op.drop_index("ix_draw_entries_account_id_status")

    op.drop_table("draw_entries")
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_waitlist_waiting_per_group",
            postgresql_where=sa.text("status = 'waiting'"),
            sqlite_where=sa.text("status = 'waiting'"),
        )
        batch_op.drop_index("ix_waitlist_entries_offering_id_status_id")

    op.drop_table("waitlist_entries")
    with op.batch_alter_table("draws", schema=None) as batch_op:
        batch_op.drop_index("ix_draws_status_entries_close_at")
        batch_op.drop_index("ix_draws_offering_id_status")

    op.drop_table("draws")
