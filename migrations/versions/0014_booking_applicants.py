"""booking applicants: a booking's people (the citizen, dependents), one seat each; one active booking per
person and service group (instead of per account); urgent requests may name a dependent

Revision ID: 0014_booking_applicants
Revises: 0012_login_lockouts

`booking_applicants.active` follows `bookings.status` through a trigger on both engines: every statement
that changes a status (a hold expiring in a sweep, a cancel, a check-in, a no-show, a draw's bookings)
keeps the per-person rule right without knowing about applicants, and a status change that would make a
second active booking of a person's group fails on the unique index like any other write.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_booking_applicants"
down_revision = "0013_floor"
branch_labels = None
depends_on = None

_ACTIVE = "status IN ('held', 'confirmed') AND kind = 'regular'"
_TRIGGER = "trg_bookings_status_applicants"
_FUNCTION = "booking_applicants_follow_status"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    op.add_column("bookings", sa.Column("seats", sa.Integer(), server_default="1", nullable=False))
    if _postgres():  # SQLite would rebuild the table for a CHECK; the services never write more than 5
        op.create_check_constraint(op.f("ck_bookings_seats_range"), "bookings", "seats BETWEEN 1 AND 5")
    op.create_table(
        "booking_applicants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("national_id", sa.String(length=20), nullable=False),
        sa.Column("full_name_ar", sa.String(length=200), nullable=False),
        sa.Column("full_name_en", sa.String(length=200), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("service_group", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_applicants_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_applicants")),
        sa.UniqueConstraint(
            "booking_id", "national_id", name=op.f("uq_booking_applicants_booking_id_national_id")
        ),
        sa.UniqueConstraint("booking_id", "position", name=op.f("uq_booking_applicants_booking_id_position")),
    )
    # Every booking so far was its citizen's alone: the citizen is its one applicant.
    op.execute(
        "INSERT INTO booking_applicants (booking_id, position, national_id, full_name_ar, full_name_en, "
        "date_of_birth, service_group, active) "
        f"SELECT b.id, 1, a.national_id, a.full_name, a.full_name, a.date_of_birth, b.service_group, "
        f"({_ACTIVE.replace('status', 'b.status').replace('kind', 'b.kind')}) "
        "FROM bookings b JOIN accounts a ON a.id = b.account_id"
    )
    op.create_index(
        "uq_booking_applicants_active_per_group",
        "booking_applicants",
        ["national_id", "service_group"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    op.drop_index("uq_bookings_active_per_group", table_name="bookings")
    if _postgres():
        op.execute(
            f"""
            CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE booking_applicants
                SET active = (NEW.status IN ('held', 'confirmed') AND NEW.kind = 'regular')
                WHERE booking_id = NEW.id
                  AND active IS DISTINCT FROM (NEW.status IN ('held', 'confirmed') AND NEW.kind = 'regular');
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {_TRIGGER} AFTER UPDATE OF status, kind ON bookings FOR EACH ROW "
            "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.kind IS DISTINCT FROM NEW.kind) "
            f"EXECUTE FUNCTION {_FUNCTION}()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER {_TRIGGER} AFTER UPDATE OF status, kind ON bookings FOR EACH ROW "
            "WHEN OLD.status IS NOT NEW.status OR OLD.kind IS NOT NEW.kind "
            "BEGIN UPDATE booking_applicants "
            "SET active = (NEW.status IN ('held', 'confirmed') AND NEW.kind = 'regular') "
            "WHERE booking_id = NEW.id; END"
        )
    op.add_column("urgent_requests", sa.Column("applicant_national_id", sa.String(length=20), nullable=True))


def downgrade():
    op.drop_column("urgent_requests", "applicant_national_id")
    op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}" + (" ON bookings" if _postgres() else ""))
    if _postgres():
        op.execute(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")
    op.create_index(
        "uq_bookings_active_per_group",
        "bookings",
        ["account_id", "service_group"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE),
        sqlite_where=sa.text(_ACTIVE),
    )
    op.drop_index("uq_booking_applicants_active_per_group", table_name="booking_applicants")
    op.drop_table("booking_applicants")
    if _postgres():
        op.drop_constraint(op.f("ck_bookings_seats_range"), "bookings", type_="check")
    op.drop_column("bookings", "seats")
