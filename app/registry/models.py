"""The local copy of the identity registry (filled by the demo data)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class RegistryPerson(db.Model):
    """A civil-status record as the registry returns it."""

    __tablename__ = "registry_people"

    national_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    full_name_ar: Mapped[str] = mapped_column(String(200))
    full_name_en: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[dt.date] = mapped_column(Date)
    passport_number: Mapped[str | None] = mapped_column(String(20))
    passport_expiry: Mapped[dt.date | None] = mapped_column(Date)
    residence_country: Mapped[str] = mapped_column(String(2), default="JO")
    disability: Mapped[bool] = mapped_column(Boolean, default=False)


class Guardianship(db.Model):
    """A guardian's legal responsibility for a minor, as the civil-status registry records it."""

    __tablename__ = "registry_guardianships"

    guardian_national_id: Mapped[str] = mapped_column(
        ForeignKey("registry_people.national_id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own: "who are this child's guardians" is asked too (a second guardian books).
    minor_national_id: Mapped[str] = mapped_column(
        ForeignKey("registry_people.national_id", ondelete="CASCADE"), primary_key=True, index=True
    )
