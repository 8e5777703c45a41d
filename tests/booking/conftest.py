"""Factory helpers for booking tests: offerings with hand-made slots, citizens in bulk, thread races."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from sqlalchemy import func, select

from app import clock
from app.accounts.models import Account
from app.extensions import db
from app.registry.models import RegistryPerson
from booking.models import Booking, Slot

_nid = itertools.count(1)


def _bulk_citizens(n: int, **person: Any) -> list[int]:
    """`n` verified citizens with registry records (no password hashing: fast)."""
    now = clock.now()
    ids = []
    for _ in range(n):
        k = next(_nid)
        nid = f"77{k:08d}"
        values = dict(
            national_id=nid,
            full_name_ar=f"مواطن {k}",
            full_name_en=f"Citizen {k}",
            date_of_birth=dt.date(1990, 1, 1),
            passport_number=f"X{k:07d}",
            passport_expiry=now.date() + dt.timedelta(days=90),
            residence_country="JO",
            disability=False,
        )
        values.update(person)
        db.session.add(RegistryPerson(**values))
        account = Account(
            national_id=nid,
            role="citizen",
            full_name=values["full_name_en"],
            date_of_birth=values["date_of_birth"],
            phone=f"+96279{k:07d}",
            password_hash="not-used",
            language="en",
            residence_country=values["residence_country"],
            phone_verified_at=now,
        )
        db.session.add(account)
        db.session.flush()
        ids.append(account.id)
    db.session.commit()
    return ids


def _slot(offering_id: int, start: dt.datetime, capacity: int, minutes: int, local_date=None) -> Slot:
    slot = Slot(
        offering_id=offering_id,
        start=start,
        end=start + dt.timedelta(minutes=minutes),
        local_date=local_date or start.date(),
        capacity=capacity,
        booked=0,
        open=True,
    )
    db.session.add(slot)
    db.session.commit()
    return slot


class BookingKit:
    """Booking-specific factories on top of `make`."""

    def __init__(self, app, make) -> None:
        self.app = app
        self.make = make

    def citizens(self, n: int, **person: Any) -> list[int]:
        return self.make.call(_bulk_citizens, n, **person)

    def citizen_id(self, **person: Any) -> int:
        return self.citizens(1, **person)[0]

    def headers_for(self, account_id: int, **extra: str) -> dict[str, str]:
        account = self.make.fresh(Account, account_id)
        return {**self.make.headers(account), **extra}

    def offering(self, *, service_kw: dict | None = None, centre_kw: dict | None = None, **kw: Any):
        centre = self.make.centre(**(centre_kw or {}))
        service = self.make.service(**(service_kw or {}))
        return self.make.offering(centre, service, **kw)

    def slot(
        self, offering, *, start: dt.datetime | None = None, capacity: int = 5, hours_ahead: float = 48
    ) -> Slot:
        # Distinct starts even for slots asked for at the same instant (UNIQUE(offering_id, start)).
        start = start or (clock.now() + dt.timedelta(hours=hours_ahead, seconds=next(_nid))).replace(
            microsecond=0
        )
        return self.make.call(_slot, offering.id, start, capacity, offering.slot_minutes)

    def slot_state(self, slot_id: int) -> tuple[int, int]:
        """(booked, capacity) as stored."""
        slot = self.make.fresh(Slot, slot_id)
        return slot.booked, slot.capacity

    def seat_holders(self, slot_id: int) -> int:
        """Bookings that count a seat in this slot."""
        return self.make.call(
            lambda: db.session.scalar(
                select(func.count()).where(Booking.slot_id == slot_id, Booking.holds_seat.is_(True))
            )
        )

    def bookings(self, **where: Any) -> list[Booking]:
        return self.make.call(lambda: list(db.session.scalars(select(Booking).filter_by(**where))))

    def call(self, func: Callable, *args, **kwargs):
        return self.make.call(func, *args, **kwargs)

    def race(self, func: Callable[..., Any], args: Iterable[Any], workers: int = 50) -> list[Any]:
        """Run func(arg) on real threads, each in its own app context; returns results or AppErrors."""
        return self.make.race(func, args, workers=workers)


@pytest.fixture
def kit(app, make) -> BookingKit:
    return BookingKit(app, make)


@pytest.fixture
def rctx(app):
    """A request context for tests that call services directly (refusals render localised messages)."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app
        db.session.remove()
