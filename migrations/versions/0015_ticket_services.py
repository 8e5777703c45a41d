"""several services in one visit: a ticket's services, party size, and each service served

Revision ID: 0015_ticket_services
Revises: 0013_floor
"""

import sqlalchemy as sa
from alembic import op

import app.database

revision = "0015_ticket_services"
down_revision = "0014_booking_applicants"
branch_labels = None
depends_on = None


def _utc():
    return app.database.UTCDateTime(timezone=True)


def _backfill() -> None:
    """Existing tickets are visits of one service."""
    conn = op.get_bind()
    one = (
        "json_build_array(service_code)" if conn.dialect.name == "postgresql" else "json_array(service_code)"
    )
    conn.execute(sa.text(f"UPDATE tickets SET services = {one}"))  # noqa: S608 (a constant)



def upgrade():
    op.add_column("tickets", sa.Column("services", sa.JSON(), nullable=True))
    op.add_column("tickets", sa.Column("services_left", sa.Integer(), server_default="0", nullable=False))
    op.add_column("tickets", sa.Column("service_bookings", sa.JSON(), nullable=True))
    op.add_column("tickets", sa.Column("party_size", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "ticket_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("counter_id", sa.Integer(), nullable=True),
        sa.Column("served_by_id", sa.Integer(), nullable=True),
        sa.Column("party_size", sa.Integer(), nullable=False),
        sa.Column("called_at", _utc(), nullable=True),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
            name=op.f("fk_ticket_services_centre_id_centres"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["counter_id"],
            ["counters.id"],
            name=op.f("fk_ticket_services_counter_id_counters"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["served_by_id"],
            ["accounts.id"],
            name=op.f("fk_ticket_services_served_by_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_code"], ["services.code"], name=op.f("fk_ticket_services_service_code_services")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_services_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_services")),
        sa.UniqueConstraint(
            "ticket_id", "service_code", name=op.f("uq_ticket_services_ticket_id_service_code")
        ),
    )
    op.create_index("ix_ticket_services_centre_day", "ticket_services", ["centre_id", "local_date"])
    op.create_index(
        "ix_ticket_services_service_ended", "ticket_services", ["centre_id", "service_code", "ended_at"]
    )
    _backfill()
    with op.batch_alter_table("tickets") as batch:
        batch.alter_column("services", existing_type=sa.JSON(), nullable=False)
        batch.create_check_constraint(op.f("ck_tickets_services_left_range"), "services_left BETWEEN 0 AND 3")
        batch.create_check_constraint(op.f("ck_tickets_party_size_positive"), "party_size >= 1")


def downgrade():
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("ck_tickets_party_size_positive"), type_="check")
        batch.drop_constraint(op.f("ck_tickets_services_left_range"), type_="check")
        batch.drop_column("party_size")
        batch.drop_column("service_bookings")
        batch.drop_column("services_left")
        batch.drop_column("services")
    op.drop_index("ix_ticket_services_service_ended", table_name="ticket_services")
    op.drop_index("ix_ticket_services_centre_day", table_name="ticket_services")
    op.drop_table("ticket_services")
