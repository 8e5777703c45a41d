"""Who a booking is for (SPEC §10): the citizen and/or the minors they are a guardian of, one seat each.

The rules per person: each applicant is the citizen or one of their dependents on the slot's date (a child
who is 18 by then books for themselves); eligibility and suspensions hold for each; and each person has at
most one active booking per service group, whoever booked it. That last rule is the partial unique index
`uq_booking_applicants_active_per_group`, kept right by the bookings.status trigger; the reads here only
give the refusal its applicant's name and find the expired holds to release first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import and_, insert, or_, select

from app.accounts.models import Account
from app.catalogue.models import Service
from app.errors import ValidationFailed
from app.extensions import db
from app.registry.services import ADULT_AGE, RegistryRecord, get_registry, lookup_person
from app.schemas import N_
from booking import errors
from booking.models import MAX_APPLICANTS, Booking, BookingApplicant, BookingSuspension

URGENT_REQUEST_PATH = "/api/v1/urgent-requests"
APPLICANTS_FIELD = "applicants"


@dataclass(frozen=True, slots=True)
class Applicant:
    """A person on a booking, as named when it was made."""

    national_id: str
    full_name_ar: str
    full_name_en: str
    date_of_birth: dt.date
    is_booker: bool
    record: RegistryRecord | None  # the registry's record, for the eligibility rules


def _field_error(message: str, **details: Any) -> ValidationFailed:
    return ValidationFailed(details={"fields": {APPLICANTS_FIELD: [message]}, **details})


def check_applicant_list(national_ids: Sequence[str]) -> None:
    """1 to MAX_APPLICANTS national ids, none twice (422 naming the field)."""
    if not 1 <= len(national_ids) <= MAX_APPLICANTS:
        raise _field_error(N_("A booking is for 1 to 5 people."), limit=MAX_APPLICANTS)
    seen: set[str] = set()
    for national_id in national_ids:
        if national_id in seen:
            raise _field_error(N_("An applicant is listed twice."), national_id=national_id)
        seen.add(national_id)


def _booker(account: Account) -> Applicant:
    # The account's name and birth date were checked against the registry when it was registered.
    return Applicant(
        national_id=account.national_id,
        full_name_ar=account.full_name,
        full_name_en=account.full_name,
        date_of_birth=account.date_of_birth,
        is_booker=True,
        record=None,
    )


def resolve_applicants(
    *, account: Account, national_ids: Sequence[str] | None, on: dt.date
) -> list[Applicant]:
    """The booking's people in the order given; default the citizen alone.

    An adult other than the citizen (a ward who is 18 on `on` too) is bad input (422); anyone else who is
    not the citizen's dependent on `on` is 403 `not_a_dependent` (an abuse refusal: the caller records it).
    """
    if not national_ids:
        return [_booker(account)]
    check_applicant_list(national_ids)
    wards = {ward.national_id: ward for ward in get_registry().wards_of(account.national_id)}
    people: list[Applicant] = []
    for national_id in national_ids:
        if national_id == account.national_id:
            people.append(_booker(account))
            continue
        record = wards.get(national_id) or lookup_person(national_id)
        if record is not None and record.age_on(on) >= ADULT_AGE:
            raise _field_error(
                N_(
                    "Only you and the children you are a guardian of can be applicants: "
                    "an adult books for themselves."
                ),
                reason="adult_applicant",
                national_id=national_id,
                on=on.isoformat(),
            )
        if national_id not in wards:
            raise errors.NotADependent(details={"national_id": national_id})
        people.append(
            Applicant(
                national_id=national_id,
                full_name_ar=record.full_name_ar,
                full_name_en=record.full_name_en,
                date_of_birth=record.date_of_birth,
                is_booker=False,
                record=record,
            )
        )
    return people


def entrant(account: Account, national_id: str) -> Applicant:
    """The person a draw entry is for, as named on the booking it wins (checked a dependent at entry)."""
    if national_id == account.national_id:
        return _booker(account)
    record = lookup_person(national_id)
    if record is None:
        raise errors.NotADependent(details={"national_id": national_id})
    return Applicant(
        national_id=national_id,
        full_name_ar=record.full_name_ar,
        full_name_en=record.full_name_en,
        date_of_birth=record.date_of_birth,
        is_booker=False,
        record=record,
    )


def check_person_eligibility(
    *, record: RegistryRecord | None, service: Service, today: dt.date, applicant: str | None = None
) -> None:
    """Passport renewal only near or past expiry; a first passport only without a valid one.

    Raises errors.NotEligible; `applicant` (a dependent's national id) is named in its details.
    """
    if service.eligibility == "none":
        return
    details: dict[str, Any] = {"urgent_request_path": URGENT_REQUEST_PATH, "service": service.code}
    if applicant is not None:
        details["national_id"] = applicant
    if record is None:
        raise errors.NotEligible(details={**details, "reason": "not_in_registry"})
    if service.eligibility == "passport_renew":
        window = dt.timedelta(days=current_app.config["RENEWAL_WINDOW_DAYS"])
        if record.passport_expiry is None:
            raise errors.NotEligible(
                details={**details, "reason": "no_passport", "suggested_service": "passport.issue"}
            )
        if record.passport_expiry > today + window:
            raise errors.NotEligible(
                details={
                    **details,
                    "reason": "passport_not_expiring",
                    "renewal_opens_on": (record.passport_expiry - window).isoformat(),
                }
            )
    elif service.eligibility == "passport_issue" and record.has_valid_passport(today):
        raise errors.NotEligible(
            details={**details, "reason": "valid_passport_held", "suggested_service": "passport.renew"}
        )


def check_dependents_eligibility(
    *, applicants: Sequence[Applicant], service: Service, today: dt.date
) -> None:
    """The eligibility rules for each dependent on the booking (the citizen's own are checked as before)."""
    for person in applicants:
        if not person.is_booker:
            check_person_eligibility(
                record=person.record, service=service, today=today, applicant=person.national_id
            )


def suspended_applicant(
    *, applicants: Sequence[Applicant], service: Service, now: dt.datetime
) -> tuple[str, BookingSuspension] | None:
    """A suspension in force on an applicant's own account, other than the booker's (checked as before)."""
    others = [p.national_id for p in applicants if not p.is_booker]
    if not others:
        return None
    scopes = ["all", "high_demand"] if service.high_demand else ["all"]
    row = db.session.execute(
        select(Account.national_id, BookingSuspension)
        .join(BookingSuspension, BookingSuspension.account_id == Account.id)
        .where(
            Account.national_id.in_(others),
            BookingSuspension.lifted_at.is_(None),
            BookingSuspension.until > now,
            BookingSuspension.scope.in_(scopes),
        )
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


@dataclass(frozen=True, slots=True)
class GroupHolder:
    """A person's active booking of a service group."""

    national_id: str
    reference: str
    slot_id: int | None
    expired_hold: bool  # a hold that ran out but was not swept yet: released, it blocks nobody


def active_in_group(*, national_ids: Sequence[str], group: str, now: dt.datetime) -> list[GroupHolder]:
    """The active bookings of `group` that name any of these people."""
    rows = db.session.execute(
        select(
            BookingApplicant.national_id,
            Booking.reference,
            Booking.slot_id,
            and_(Booking.status == "held", Booking.hold_expires_at <= now).label("expired"),
        )
        .join(Booking, Booking.id == BookingApplicant.booking_id)
        .where(
            BookingApplicant.national_id.in_(list(national_ids)),
            BookingApplicant.service_group == group,
            BookingApplicant.active.is_(True),
        )
        .order_by(BookingApplicant.national_id)
    ).all()
    return [GroupHolder(r.national_id, r.reference, r.slot_id, bool(r.expired)) for r in rows]


def group_refusal(
    holder: GroupHolder, *, group: str, applicants: Sequence[Applicant]
) -> errors.ActiveBookingExists:
    """409 naming the applicant who already has an active booking of the group."""
    person = next((p for p in applicants if p.national_id == holder.national_id), None)
    details: dict[str, Any] = {"reason": "per_group", "service_group": group, "reference": holder.reference}
    if person is not None and not person.is_booker:
        details.update(national_id=person.national_id, applicant_name=person.full_name_en)
    return errors.ActiveBookingExists(details=details)


def add_applicants(
    *, booking_id: int, applicants: Sequence[Applicant], group: str, active: bool = True
) -> None:
    """Write the booking's applicant rows (one statement; the unique index refuses a second active one)."""
    add_applicant_rows([(booking_id, applicants)], group=group, active=active)


def add_applicant_rows(
    bookings: Sequence[tuple[int, Sequence[Applicant]]], *, group: str, active: bool = True
) -> None:
    """Write the applicant rows of several bookings of one group (booking id, its people) in one statement."""
    rows = [
        {
            "booking_id": booking_id,
            "position": position,
            "national_id": person.national_id,
            "full_name_ar": person.full_name_ar,
            "full_name_en": person.full_name_en,
            "date_of_birth": person.date_of_birth,
            "service_group": group,
            "active": active,
        }
        for booking_id, people in bookings
        for position, person in enumerate(people, start=1)
    ]
    if rows:
        db.session.execute(insert(BookingApplicant), rows)


def applicant_rows(booking: Booking, applicants: Sequence[Applicant]) -> list[BookingApplicant]:
    """The applicant rows just written for `booking`, as objects for its answer (not added to the session)."""
    return [
        BookingApplicant(
            booking_id=booking.id,
            position=position,
            national_id=person.national_id,
            full_name_ar=person.full_name_ar,
            full_name_en=person.full_name_en,
            date_of_birth=person.date_of_birth,
            service_group=booking.service_group,
            active=True,
        )
        for position, person in enumerate(applicants, start=1)
    ]


def add_bookers_as_applicants(booking_ids: Sequence[int]) -> None:
    """Each of these bookings is its citizen's alone (a draw win, a waitlist offer): one statement for all."""
    if not booking_ids:
        return
    active = and_(Booking.status.in_(("held", "confirmed")), Booking.kind == "regular")
    db.session.execute(
        insert(BookingApplicant).from_select(
            [
                "booking_id",
                "position",
                "national_id",
                "full_name_ar",
                "full_name_en",
                "date_of_birth",
                "service_group",
                "active",
            ],
            select(
                Booking.id,
                1,
                Account.national_id,
                Account.full_name,
                Account.full_name,
                Account.date_of_birth,
                Booking.service_group,
                active,
            )
            .join(Account, Account.id == Booking.account_id)
            .where(Booking.id.in_(list(booking_ids))),
        )
    )


def is_group_violation(exc: Exception) -> bool:
    """Whether an IntegrityError is the per-person, per-group rule."""
    message = str(getattr(exc, "orig", exc))
    return "uq_booking_applicants_active_per_group" in message or (
        "booking_applicants.national_id" in message and "booking_applicants.service_group" in message
    )


def live_group_filter(now: dt.datetime):
    """SQL: an active booking that is not a hold already run out."""
    return or_(Booking.status == "confirmed", and_(Booking.status == "held", Booking.hold_expires_at > now))
