"""The registry adapter: a real interconnection-bus client implements the same protocol."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.registry.models import Guardianship, RegistryPerson

ADULT_AGE = 18


HOME_COUNTRY = "JO"


def lives_abroad(residence_country: str) -> bool:
    """Whether a country of residence makes a person an expatriate (anywhere but Jordan)."""
    return residence_country.upper() != HOME_COUNTRY


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    """What the civil-status registry says about a person."""

    national_id: str
    full_name_ar: str
    full_name_en: str
    date_of_birth: dt.date
    passport_number: str | None
    passport_expiry: dt.date | None
    residence_country: str
    disability: bool = False

    @property
    def is_expatriate(self) -> bool:
        return lives_abroad(self.residence_country)

    def has_valid_passport(self, on: dt.date) -> bool:
        return self.passport_expiry is not None and self.passport_expiry >= on

    def age_on(self, on: dt.date) -> int:
        years = on.year - self.date_of_birth.year
        return years - ((on.month, on.day) < (self.date_of_birth.month, self.date_of_birth.day))


class IdentityRegistry(Protocol):
    """Resolve a national id to its civil-status record."""

    def lookup(self, national_id: str) -> RegistryRecord | None: ...

    def wards_of(self, guardian_national_id: str) -> list[RegistryRecord]: ...


class DatabaseRegistry:
    """The registry as a local table (development, tests, demo)."""

    def lookup(self, national_id: str) -> RegistryRecord | None:
        person = db.session.get(RegistryPerson, national_id)
        if person is None:
            return None
        return registry_record(person)

    def wards_of(self, guardian_national_id: str) -> list[RegistryRecord]:
        people = db.session.scalars(
            select(RegistryPerson)
            .join(Guardianship, Guardianship.minor_national_id == RegistryPerson.national_id)
            .where(Guardianship.guardian_national_id == guardian_national_id)
            .order_by(RegistryPerson.date_of_birth, RegistryPerson.national_id)
        )
        return [registry_record(person) for person in people]


def registry_record(person: RegistryPerson) -> RegistryRecord:
    """The record of a row of the local registry table."""
    return RegistryRecord(
        national_id=person.national_id,
        full_name_ar=person.full_name_ar,
        full_name_en=person.full_name_en,
        date_of_birth=person.date_of_birth,
        passport_number=person.passport_number,
        passport_expiry=person.passport_expiry,
        residence_country=person.residence_country,
        disability=person.disability,
    )


def get_registry() -> IdentityRegistry:
    """The configured adapter (tests and a bus client replace it through `app.extensions`)."""
    return current_app.extensions.get("identity_registry") or DatabaseRegistry()


def lookup_person(national_id: str) -> RegistryRecord | None:
    """The registry's record for a national id, if any."""
    return get_registry().lookup(national_id)


def list_dependents(*, guardian_national_id: str, on: dt.date) -> list[RegistryRecord]:
    """The minors (under 18 on `on`) in the registry of whom this person is a guardian."""
    wards = get_registry().wards_of(guardian_national_id)
    return [ward for ward in wards if ward.age_on(on) < ADULT_AGE]
