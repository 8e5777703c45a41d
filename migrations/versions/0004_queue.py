"""queue and urgent passports

Revision ID: 0004_queue
Revises: 0003_notifications
"""

revision = "0004_queue"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None


def upgrade():
    # Filled by the queue and urgent passports issue; kept in the chain so later revisions have a parent.
    return None


def downgrade():
    return None
