"""refresh tokens: index the revocation time (ended sessions are copied back into Redis from it)

Revision ID: 0010_revoked_sessions
Revises: 0009_idempotency_lease
"""

from alembic import op

revision = "0010_revoked_sessions"
down_revision = "0009_idempotency_lease"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.create_index("ix_refresh_tokens_revoked_at", ["revoked_at"], unique=False)


def downgrade():
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_index("ix_refresh_tokens_revoked_at")
