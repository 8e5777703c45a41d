"""queue and urgent passports: tickets, numbering, counter sessions, urgent requests, audit log

Revision ID: 0004_queue
Revises: 0003_notifications
"""

import sqlalchemy as sa
from alembic import op

import app.database

revision = "0004_queue"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None

_ACTIVE_REMOTE = "source = 'remote' AND status IN ('waiting', 'called', 'serving')"


def _instant():
    return app.database.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "urgent_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("reason_code", sa.String(length=20), nullable=False),
        sa.Column("travel_date", sa.Date(), nullable=False),
        sa.Column("details", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", _instant(), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("approved_date", sa.Date(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'used')", name=op.f("ck_urgent_requests_status")
        ),
        sa.CheckConstraint(
            "reason_code IN ('medical', 'bereavement', 'study_or_work', 'official_travel', 'other')",
            name=op.f("ck_urgent_requests_reason_code"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_urgent_requests_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centres.id"], name=op.f("fk_urgent_requests_centre_id_centres"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["service_code"], ["services.code"], name=op.f("fk_urgent_requests_service_code_services")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["accounts.id"], name=op.f("fk_urgent_requests_decided_by_accounts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_urgent_requests")),
    )
    op.create_index(op.f("ix_urgent_requests_account_id"), "urgent_requests", ["account_id"], unique=False)
    op.create_index(op.f("ix_urgent_requests_booking_id"), "urgent_requests", ["booking_id"], unique=False)
    op.create_index("ix_urgent_requests_centre_status", "urgent_requests", ["centre_id", "status"], unique=False)
    op.create_index(
        "ix_urgent_requests_one_pending",
        "urgent_requests",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=12), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("vulnerable", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("issued_at", _instant(), nullable=False),
        sa.Column("appointment_at", _instant(), nullable=True),
        sa.Column("called_at", _instant(), nullable=True),
        sa.Column("started_at", _instant(), nullable=True),
        sa.Column("ended_at", _instant(), nullable=True),
        sa.Column("counter_id", sa.Integer(), nullable=True),
        sa.Column("served_by_id", sa.Integer(), nullable=True),
        sa.Column("recall_count", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("urgent_request_id", sa.Integer(), nullable=True),
        sa.Column("transferred_from_id", sa.Integer(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.String(length=1000), nullable=True),
        sa.Column("rated_at", _instant(), nullable=True),
        sa.CheckConstraint(
            "source IN ('walk_in', 'appointment', 'urgent', 'remote')", name=op.f("ck_tickets_source")
        ),
        sa.CheckConstraint(
            "status IN ('waiting', 'called', 'serving', 'done', 'no_show', 'transferred', 'cancelled', 'expired')",
            name=op.f("ck_tickets_status"),
        ),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name=op.f("ck_tickets_rating_range")),
        sa.CheckConstraint("recall_count >= 0", name=op.f("ck_tickets_recall_count_nonnegative")),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centres.id"], name=op.f("fk_tickets_centre_id_centres"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["service_code"], ["services.code"], name=op.f("fk_tickets_service_code_services")),
        sa.ForeignKeyConstraint(
            ["counter_id"], ["counters.id"], name=op.f("fk_tickets_counter_id_counters"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["served_by_id"], ["accounts.id"], name=op.f("fk_tickets_served_by_id_accounts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_tickets_account_id_accounts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["urgent_request_id"],
            ["urgent_requests.id"],
            name=op.f("fk_tickets_urgent_request_id_urgent_requests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["transferred_from_id"],
            ["tickets.id"],
            name=op.f("fk_tickets_transferred_from_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint(
            "centre_id", "service_code", "local_date", "seq", name=op.f("uq_tickets_centre_id_service_code_local_date_seq")
        ),
    )
    op.create_index(op.f("ix_tickets_local_date"), "tickets", ["local_date"], unique=False)
    op.create_index(op.f("ix_tickets_counter_id"), "tickets", ["counter_id"], unique=False)
    op.create_index(op.f("ix_tickets_account_id"), "tickets", ["account_id"], unique=False)
    op.create_index(op.f("ix_tickets_booking_id"), "tickets", ["booking_id"], unique=False)
    op.create_index(op.f("ix_tickets_transferred_from_id"), "tickets", ["transferred_from_id"], unique=False)
    op.create_index(
        "ix_tickets_queue", "tickets", ["centre_id", "status", "service_code", "issued_at"], unique=False
    )
    op.create_index(
        "ix_tickets_one_active_remote",
        "tickets",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE_REMOTE),
        sqlite_where=sa.text(_ACTIVE_REMOTE),
    )

    op.create_table(
        "ticket_sequences",
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centres.id"], name=op.f("fk_ticket_sequences_centre_id_centres"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["service_code"], ["services.code"], name=op.f("fk_ticket_sequences_service_code_services")
        ),
        sa.PrimaryKeyConstraint("centre_id", "service_code", "local_date", name=op.f("pk_ticket_sequences")),
    )

    op.create_table(
        "counter_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("counter_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("opened_at", _instant(), nullable=False),
        sa.Column("closed_at", _instant(), nullable=True),
        sa.ForeignKeyConstraint(
            ["counter_id"], ["counters.id"], name=op.f("fk_counter_sessions_counter_id_counters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_counter_sessions_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counter_sessions")),
    )
    op.create_index(op.f("ix_counter_sessions_counter_id"), "counter_sessions", ["counter_id"], unique=False)
    op.create_index(op.f("ix_counter_sessions_account_id"), "counter_sessions", ["account_id"], unique=False)
    op.create_index(
        "ix_counter_sessions_one_open_per_counter",
        "counter_sessions",
        ["counter_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_centre_id"), "audit_log", ["centre_id"], unique=False)
    op.create_index(op.f("ix_audit_log_created_at"), "audit_log", ["created_at"], unique=False)
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_type", "subject_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # Append-only: nobody (not even a bug in our code) can rewrite or erase who decided what.
        op.execute(
            """
            CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_created_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_centre_id"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_counter_sessions_one_open_per_counter", table_name="counter_sessions")
    op.drop_index(op.f("ix_counter_sessions_account_id"), table_name="counter_sessions")
    op.drop_index(op.f("ix_counter_sessions_counter_id"), table_name="counter_sessions")
    op.drop_table("counter_sessions")
    op.drop_table("ticket_sequences")
    op.drop_index("ix_tickets_one_active_remote", table_name="tickets")
    op.drop_index("ix_tickets_queue", table_name="tickets")
    op.drop_index(op.f("ix_tickets_transferred_from_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_booking_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_account_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_counter_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_local_date"), table_name="tickets")
    op.drop_table("tickets")
    op.drop_index("ix_urgent_requests_one_pending", table_name="urgent_requests")
    op.drop_index("ix_urgent_requests_centre_status", table_name="urgent_requests")
    op.drop_index(op.f("ix_urgent_requests_booking_id"), table_name="urgent_requests")
    op.drop_index(op.f("ix_urgent_requests_account_id"), table_name="urgent_requests")
    op.drop_table("urgent_requests")
