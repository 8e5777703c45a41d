"""queue: partial indexes for the heads of call-next's ordering streams

Revision ID: 0005_queue_stream_indexes
Revises: 0004_queue
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_queue_stream_indexes"
down_revision = "0004_queue"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_tickets_waiting_stream",
        "tickets",
        ["centre_id", "service_code", "source", "vulnerable", "issued_at", "id"],
        postgresql_where=sa.text("status = 'waiting'"),
        sqlite_where=sa.text("status = 'waiting'"),
    )
    op.create_index(
        "ix_tickets_waiting_appointments",
        "tickets",
        ["centre_id", "service_code", "appointment_at", "issued_at", "id"],
        postgresql_where=sa.text("status = 'waiting' AND source = 'appointment'"),
        sqlite_where=sa.text("status = 'waiting' AND source = 'appointment'"),
    )


def downgrade():
    op.drop_index("ix_tickets_waiting_appointments", table_name="tickets")
    op.drop_index("ix_tickets_waiting_stream", table_name="tickets")
