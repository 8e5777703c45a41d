"""Booking references: drawn at random, read aloud and typed by people, unique by a database index."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import lazyload

from app.dialect import insert_ignoring
from app.errors import Conflict
from app.extensions import db
from booking.applicants import Applicant, add_applicants, add_bookers_as_applicants
from booking.models import Booking

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
