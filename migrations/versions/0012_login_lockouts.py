"""login lockouts: failed sign-ins locked per (national id, address), not per account

Revision ID: 0012_login_lockouts
Revises: 0011_display_screens
"""

import sqlalchemy as sa
from alembic import op

import app.database

revision = "0012_login_lockouts"
down_revision = "0011_display_screens"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_lockouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_login_lockouts_account_id_accounts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_login_lockouts"),
        sa.UniqueConstraint("account_id", "address", name="uq_login_lockouts_account_id_address"),
    )
    op.create_index("ix_login_lockouts_updated_at", "login_lockouts", ["updated_at"], unique=False)


def downgrade():
    op.drop_index("ix_login_lockouts_updated_at", table_name="login_lockouts")
    op.drop_table("login_lockouts")
