"""bookings: a partial index of the seats that can fall due for release, per slot (availability)

Revision ID: 0016_seat_releasable_index
Revises: 0015_ticket_services

Availability counts each slot's due seats (expired holds, cancels past their delay). Through
`ix_bookings_slot_id_status` that read every cancelled booking of the slot, released long ago or not, so
a search grew with the slot's history. This index holds only the bookings that hold a seat and can fall
due (`booking.models.SEAT_RELEASABLE`): at most a slot's capacity. Built concurrently on PostgreSQL, so
bookings keep being written while it builds.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_seat_releasable_index"
down_revision = "0015_ticket_services"
branch_labels = None
depends_on = None

_NAME = "ix_bookings_slot_id_releasable"
# As booking.models.SEAT_RELEASABLE was when this was written (a migration does not follow the models).
_WHERE = "holds_seat AND status IN ('held', 'cancelled')"


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index(
            _NAME,
            "bookings",
            ["slot_id"],
            postgresql_where=sa.text(_WHERE),
            sqlite_where=sa.text(_WHERE),
            postgresql_concurrently=True,
        )


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index(_NAME, table_name="bookings", postgresql_concurrently=True)
