"""idempotency keys: a lease that lapses and the attempt that holds it

Revision ID: 0009_idempotency_lease
Revises: 0008_release
"""

import sqlalchemy as sa
from alembic import op

from app.database import UTCDateTime

revision = "0009_idempotency_lease"
down_revision = "0008_release"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("idempotency_keys") as batch:
        # Existing keys without an answer get no lease: the next replay takes them over.
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))


def downgrade():
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("attempt")
        batch.drop_column("lease_until")
