"""queue: partial index of the tickets a counter is calling or serving

Revision ID: 0006_queue
Revises: 0005_queue_stream_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_queue"
down_revision = "0005_queue_stream_indexes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_tickets_counter_active",
        "tickets",
        ["counter_id"],
        postgresql_where=sa.text("status IN ('called', 'serving')"),
        sqlite_where=sa.text("status IN ('called', 'serving')"),
    )


def downgrade():
    op.drop_index("ix_tickets_counter_active", table_name="tickets")
