"""registry: guardianships (guardian national id -> minor national id)

Revision ID: 0007_registry_guardianships
Revises: 0006_queue
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_registry_guardianships"
down_revision = "0006_queue"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "registry_guardianships",
        sa.Column("guardian_national_id", sa.String(length=20), nullable=False),
        sa.Column("minor_national_id", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["guardian_national_id"],
            ["registry_people.national_id"],
            name=op.f("fk_registry_guardianships_guardian_national_id_registry_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["minor_national_id"],
            ["registry_people.national_id"],
            name=op.f("fk_registry_guardianships_minor_national_id_registry_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "guardian_national_id", "minor_national_id", name=op.f("pk_registry_guardianships")
        ),
    )
    op.create_index(
        op.f("ix_registry_guardianships_minor_national_id"),
        "registry_guardianships",
        ["minor_national_id"],
    )


def downgrade():
    op.drop_index(op.f("ix_registry_guardianships_minor_national_id"), table_name="registry_guardianships")
    op.drop_table("registry_guardianships")
