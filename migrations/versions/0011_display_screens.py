"""display screens: hall displays with a token that opens their centre's live stream

Revision ID: 0011_display_screens
Revises: 0010_revoked_sessions
"""

import sqlalchemy as sa
from alembic import op

import app.database

revision = "0011_display_screens"
down_revision = "0010_revoked_sessions"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "display_screens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centres.id"], name="fk_display_screens_centre_id_centres", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_display_screens"),
        sa.UniqueConstraint("token_hash", name="uq_display_screens_token_hash"),
    )
    op.create_index("ix_display_screens_centre_id", "display_screens", ["centre_id"], unique=False)


def downgrade():
    op.drop_index("ix_display_screens_centre_id", table_name="display_screens")
    op.drop_table("display_screens")
