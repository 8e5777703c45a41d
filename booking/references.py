"""Booking references: drawn at random, read aloud and typed by people, unique by a database index."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import JSON, Date, Integer, String, bindparam, cast, func, insert, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import lazyload

from app.dialect import insert_ignoring
from app.errors import Conflict
from app.extensions import db
from booking.applicants import Applicant, add_applicants, add_bookers_as_applicants
from booking.models import Booking, BookingApplicant, Slot
from notifications.models import Notification
from notifications.services import NOTIFICATION_COLUMNS

# Unambiguous for reading aloud and typing: no 0/O, 1/I/L.
REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
REFERENCE_LENGTH = 6
DRAWS = 8  # a reference already taken is drawn again, at most this many times


def new_reference() -> str:
    """A random reference such as `BK-7KQ2MX` (not checked against the table)."""
    return "BK-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def normalise_reference(reference: str) -> str:
    """References are typed by people: ignore case and surrounding spaces."""
    return (reference or "").strip().upper()


def unused_reference() -> str:
    """A reference no booking has yet (for a booking added through the session)."""
    for _ in range(DRAWS):
        reference = new_reference()
        if db.session.scalar(select(Booking.id).where(Booking.reference == reference)) is None:
            return reference
    raise Conflict()  # practically unreachable: 31^6 ≈ 887 million references


def insert_booking(values: dict[str, Any], applicants: Sequence[Applicant] | None = None) -> Booking:
    """INSERT the booking under a fresh reference, then its applicant rows (default: its citizen alone).

    Every booking INSERT goes through here, so every booking names its people. `ON CONFLICT (reference)
    DO NOTHING` skips only a reference collision, in the same round trip and without breaking the
    transaction; the partial unique indexes (one hold; one active booking per person and group, on the
    applicant rows) still raise.
    """
    for _ in range(DRAWS):
        stmt = insert_ignoring(
            Booking, index_elements=["reference"], reference=new_reference(), **values
        ).returning(Booking)
        # The new booking's applicants are the rows written next: not read back (selectin) here; a
        # caller that wants them reads them lazily, or sets them from the values in hand (a hold).
        stmt = select(Booking).from_statement(stmt).options(lazyload(Booking.applicants))
        booking = db.session.scalars(stmt).first()
        if booking is not None:
            if applicants is None:
                add_bookers_as_applicants([booking.id])
            else:
                add_applicants(booking_id=booking.id, applicants=applicants, group=values["service_group"])
            return booking
    raise Conflict()  # practically unreachable: 31^6 ≈ 887 million references


_APPLICANT_ARRAYS = ("position", "national_id", "full_name_ar", "full_name_en", "date_of_birth")
_APPLICANT_TYPES = (Integer, String, String, String, Date)


@functools.cache
def _booking_with_people_and_notice(columns: tuple[str, ...], taking_seats: bool = False) -> Any:
    """PostgreSQL: INSERT a booking, its applicant rows and its citizen's notification in one statement.

    The booking in a CTE (`ON CONFLICT (reference) DO NOTHING`, so a reference collision inserts nothing at
    all); its applicants from arrays (`unnest`, one shape for any number of people); the notification
    from its row, with the booking's id added to its dedupe key and routing data. Answers the booking's
    row. Built once per set of booking columns.

    `taking_seats`: the slot's seats are taken first, in the same statement, by the conditional seat
    UPDATE of `booking.seats.take_seat` (`s_slot`, `s_seats`), and the booking is inserted only from its
    row. It answers no row when the seats were not there (nothing written), and one row whose booking
    columns are all NULL when the seats were taken but the reference collided."""
    bookings = Booking.__table__
    new = postgresql.insert(bookings)
    values = {name: bindparam(f"b_{name}", type_=bookings.c[name].type) for name in columns}
    seat = None
    if taking_seats:
        slots = Slot.__table__
        wanted = bindparam("s_seats", type_=Integer)
        seat = (
            update(slots)
            .where(
                slots.c.id == bindparam("s_slot", type_=Integer),
                slots.c.open.is_(True),
                slots.c.booked + wanted <= slots.c.capacity,
            )
            .values(booked=slots.c.booked + wanted)
            .returning(slots.c.id)
            .cte("seat")
        )
        new = new.from_select(list(values), select(*values.values()).select_from(seat))
    else:
        new = new.values(values)
    new = new.on_conflict_do_nothing(index_elements=["reference"]).returning(*bookings.c).cte("new_booking")
    people = (
        func.unnest(
            *(
                bindparam(f"a_{name}", type_=postgresql.ARRAY(kind))
                for name, kind in zip(_APPLICANT_ARRAYS, _APPLICANT_TYPES, strict=True)
            )
        )
        .table_valued(*_APPLICANT_ARRAYS)
        .render_derived()
        .alias("people")
    )
    applicants = insert(BookingApplicant.__table__).from_select(
        ["booking_id", *_APPLICANT_ARRAYS, "service_group", "active"],
        select(new.c.id, *(people.c[name] for name in _APPLICANT_ARRAYS), new.c.service_group, true())
        .select_from(new)
        .join(people, true()),
    )
    notifications = Notification.__table__
    booking_id = cast(new.c.id, String)
    data = cast(bindparam("n_data", type_=postgresql.JSONB), postgresql.JSONB).op("||")(
        func.jsonb_build_object("booking_id", booking_id)
    )
    notice = postgresql.insert(notifications).from_select(
        NOTIFICATION_COLUMNS,
        select(
            bindparam("n_account_id", type_=Integer),
            bindparam("n_kind", type_=String),
            bindparam("n_language", type_=String),
            bindparam("n_title", type_=String),
            bindparam("n_body", type_=String),
            cast(data, JSON),
            bindparam("n_dedupe_prefix", type_=String) + booking_id,
            bindparam("n_created_at", type_=notifications.c.created_at.type),
        ).select_from(new),
    )
    notice = notice.on_conflict_do_nothing(index_elements=["dedupe_key"])
    answer = select(*(new.c[c.key] for c in bookings.c))
    if seat is not None:  # a row per seat UPDATE that applied, with the booking if it was inserted
        answer = answer.select_from(seat).outerjoin(new, true())
    return answer.add_cte(applicants.cte("people_rows")).add_cte(notice.cte("notice"))


class SlotShort(Exception):
    """`insert_booking_with_notice(take_seats=...)` found the slot without those seats (nothing written)."""


def insert_booking_with_notice(
    values: dict[str, Any],
    applicants: Sequence[Applicant],
    *,
    notice: Callable[[str], dict[str, Any]],
    dedupe_prefix: str,
    take_seats: int = 0,
) -> Booking:
    """PostgreSQL: as `insert_booking` with these applicants, and the notification in the same statement
    (one round trip instead of three). `notice(reference)`: the notification's row without the booking's
    id (`notification_values`); the id is added to its routing data and after `dedupe_prefix`.

    `take_seats`: also take that many seats of the booking's slot first, in the same statement (as
    `take_seat` would); raises `SlotShort` when the slot has not got them, having written nothing."""
    arrays = {
        "a_position": list(range(1, len(applicants) + 1)),
        "a_national_id": [p.national_id for p in applicants],
        "a_full_name_ar": [p.full_name_ar for p in applicants],
        "a_full_name_en": [p.full_name_en for p in applicants],
        "a_date_of_birth": [p.date_of_birth for p in applicants],
    }
    for _ in range(DRAWS):
        reference = new_reference()
        row = {"reference": reference, **values}
        told = notice(reference)
        params = {
            **{f"b_{name}": value for name, value in row.items()},
            **arrays,
            **{f"n_{name}": told[name] for name in NOTIFICATION_COLUMNS if name != "dedupe_key"},
            "n_dedupe_prefix": dedupe_prefix,
        }
        if take_seats:
            params.update(s_slot=values["slot_id"], s_seats=take_seats)
        stmt = (
            select(Booking)
            .from_statement(_booking_with_people_and_notice(tuple(row), bool(take_seats)))
            .options(lazyload(Booking.applicants))
        )
        found = db.session.scalars(stmt, params).all()
        if take_seats:
            if not found:
                raise SlotShort()
            take_seats = 0  # taken: a collided reference is drawn again without taking them twice
        if found and found[0] is not None:
            return found[0]
    raise Conflict()  # practically unreachable: 31^6 ≈ 887 million references
