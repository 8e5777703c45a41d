"""notifications

Revision ID: 0003_notifications
Revises: 0002_booking
"""

revision = "0003_notifications"
down_revision = "0002_booking"
branch_labels = None
depends_on = None


def upgrade():
    # Filled by the notifications issue; kept in the chain so later revisions have a parent.
    return None


def downgrade():
    return None
