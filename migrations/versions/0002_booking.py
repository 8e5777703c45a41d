"""booking: slots, bookings, urgent reserve usage, abuse events, suspensions, device bindings

Revision ID: 0002_booking
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import app.database

revision = "0002_booking"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

_ACTIVE_REGULAR = "status IN ('held', 'confirmed') AND kind = 'regular'"
_HELD = "status = 'held'"


def _instant():
    return app.database.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offering_id", sa.Integer(), nullable=False),
        sa.Column("start", _instant(), nullable=False),
        sa.Column("end", _instant(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("open", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name=op.f("ck_slots_booked_range")),
        sa.CheckConstraint('"end" > start', name=op.f("ck_slots_end_after_start")),
        sa.ForeignKeyConstraint(
            ["offering_id"], ["offerings.id"], name=op.f("fk_slots_offering_id_offerings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots")),
        sa.UniqueConstraint("offering_id", "start", name=op.f("uq_slots_offering_id_start")),
    )

    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("offering_id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("service_group", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("urgent_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("holds_seat", sa.Boolean(), nullable=False),
        sa.Column("hold_expires_at", _instant(), nullable=True),
        sa.Column("seat_release_at", _instant(), nullable=True),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("confirmed_at", _instant(), nullable=True),
        sa.Column("cancelled_at", _instant(), nullable=True),
        sa.Column("checked_in_at", _instant(), nullable=True),
        sa.Column("completed_at", _instant(), nullable=True),
        sa.Column("no_show_at", _instant(), nullable=True),
        sa.Column("rescheduled_at", _instant(), nullable=True),
        sa.CheckConstraint(
            "status IN ('held', 'confirmed', 'checked_in', 'completed', 'cancelled', 'expired', 'no_show')",
            name=op.f("ck_bookings_status"),
        ),
        sa.CheckConstraint("kind IN ('regular', 'urgent')", name=op.f("ck_bookings_kind")),
        sa.CheckConstraint(
            "(kind = 'regular' AND slot_id IS NOT NULL) OR (kind = 'urgent' AND urgent_date IS NOT NULL)",
            name=op.f("ck_bookings_kind_shape"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_bookings_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["centre_id"], ["centres.id"], name=op.f("fk_bookings_centre_id_centres")),
        sa.ForeignKeyConstraint(
            ["offering_id"], ["offerings.id"], name=op.f("fk_bookings_offering_id_offerings")
        ),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_bookings_slot_id_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("reference", name=op.f("uq_bookings_reference")),
    )
    op.create_index(
        "uq_bookings_active_per_group",
        "bookings",
        ["account_id", "service_group"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE_REGULAR),
        sqlite_where=sa.text(_ACTIVE_REGULAR),
    )
    op.create_index(
        "uq_bookings_one_hold",
        "bookings",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text(_HELD),
        sqlite_where=sa.text(_HELD),
    )
    op.create_index("ix_bookings_account_id_created_at", "bookings", ["account_id", "created_at"])
    op.create_index("ix_bookings_slot_id_status", "bookings", ["slot_id", "status"])
    op.create_index("ix_bookings_status_hold_expires_at", "bookings", ["status", "hold_expires_at"])

    op.create_table(
        "urgent_reserve_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offering_id", sa.Integer(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_urgent_reserve_usage_used_nonnegative")),
        sa.ForeignKeyConstraint(
            ["offering_id"],
            ["offerings.id"],
            name=op.f("fk_urgent_reserve_usage_offering_id_offerings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_urgent_reserve_usage")),
        sa.UniqueConstraint(
            "offering_id", "local_date", name=op.f("uq_urgent_reserve_usage_offering_id_local_date")
        ),
    )

    op.create_table(
        "abuse_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("national_id", sa.String(length=20), nullable=True),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_abuse_events_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abuse_events")),
    )
    op.create_index("ix_abuse_events_created_at", "abuse_events", ["created_at"])
    op.create_index("ix_abuse_events_national_id_created_at", "abuse_events", ["national_id", "created_at"])
    op.create_index("ix_abuse_events_rule_created_at", "abuse_events", ["rule", "created_at"])

    op.create_table(
        "booking_suspensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("until", _instant(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("lifted_at", _instant(), nullable=True),
        sa.Column("lifted_by", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('no_show', 'cancel_cooldown')", name=op.f("ck_booking_suspensions_kind")
        ),
        sa.CheckConstraint("scope IN ('high_demand', 'all')", name=op.f("ck_booking_suspensions_scope")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_booking_suspensions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lifted_by"],
            ["accounts.id"],
            name=op.f("fk_booking_suspensions_lifted_by_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_suspensions")),
    )
    op.create_index("ix_booking_suspensions_account_id_until", "booking_suspensions", ["account_id", "until"])

    op.create_table(
        "device_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("first_seen", _instant(), nullable=False),
        sa.Column("last_seen", _instant(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_device_bindings_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_bindings")),
        sa.UniqueConstraint("device_id", "account_id", name=op.f("uq_device_bindings_device_id_account_id")),
    )
    op.create_index("ix_device_bindings_device_id_last_seen", "device_bindings", ["device_id", "last_seen"])


def downgrade():
    op.drop_table("device_bindings")
    op.drop_table("booking_suspensions")
    op.drop_table("abuse_events")
    op.drop_table("urgent_reserve_usage")
    op.drop_index("ix_bookings_status_hold_expires_at", table_name="bookings")
    op.drop_index("ix_bookings_slot_id_status", table_name="bookings")
    op.drop_index("ix_bookings_account_id_created_at", table_name="bookings")
    op.drop_index("uq_bookings_one_hold", table_name="bookings")
    op.drop_index("uq_bookings_active_per_group", table_name="bookings")
    op.drop_table("bookings")
    op.drop_table("slots")
