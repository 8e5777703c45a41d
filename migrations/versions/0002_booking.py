"""booking

Revision ID: 0002_booking
Revises: 0001_foundation
"""

revision = "0002_booking"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade():
    # Filled by the booking issue; kept in the chain so later revisions have a parent.
    return None


def downgrade():
    return None
