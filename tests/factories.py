"""Factory helpers in the style of indico's fixtures: build rows with sensible defaults, override any."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from app import clock
from app.accounts.models import Account
from app.accounts.services import create_kiosk, hash_password
from app.catalogue.models import Centre, Counter, Offering, Service
from app.extensions import db
from app.registry.models import Guardianship, RegistryPerson
from app.tokens import issue_access_token

PASSWORD = "Test-pass-2026"
_ids = itertools.count(1)
WEEKDAYS_OPEN = {d: [["08:00", "15:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
# Tickets are issued only while a centre is open: queue tests that run at any hour use this.
AROUND_THE_CLOCK = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def create_person(**overrides: Any) -> RegistryPerson:
    """A civil-registry record (resident, passport expiring in 90 days)."""
    n = next(_ids)
    values = dict(
        national_id=f"{5000000000 + n}",
        full_name_ar=f"شخص {n}",
        full_name_en=f"Person {n}",
        date_of_birth=dt.date(1990, 1, 1),
        passport_number=f"T{n:07d}",
        passport_expiry=clock.now().date() + dt.timedelta(days=90),
        residence_country="JO",
        disability=False,
    )
    values.update(overrides)
    person = RegistryPerson(**values)
    db.session.add(person)
    db.session.commit()
    return person


def create_account(
    role: str = "citizen", *, verified: bool = True, person: RegistryPerson | None = None, **overrides: Any
) -> Account:
    """An account (with its registry record); staff and supervisors need `centre_id`."""
    person = person or create_person(
        **{
            k: overrides.pop(k)
            for k in list(overrides)
            if k in ("passport_expiry", "residence_country", "date_of_birth", "disability")
        }
    )
    values = dict(
        national_id=person.national_id,
        role=role,
        full_name=person.full_name_en,
        date_of_birth=person.date_of_birth,
        phone="+962790000000",
        password_hash=hash_password(PASSWORD),
        language="en",
        residence_country=person.residence_country,
        phone_verified_at=clock.now() if verified else None,
    )
    values.update(overrides)
    account = Account(**values)
    db.session.add(account)
    db.session.commit()
    return account


def create_minor(*, guardians: list[Any], age: int = 10, **overrides: Any) -> RegistryPerson:
    """A minor in the registry (no account), `age` years old today, in the care of `guardians` (accounts)."""
    today = clock.now().date()
    born = today.replace(year=today.year - age, day=min(today.day, 28))
    person = create_person(date_of_birth=born, **overrides)
    for guardian in guardians:
        db.session.add(
            Guardianship(guardian_national_id=guardian.national_id, minor_national_id=person.national_id)
        )
    db.session.commit()
    return person


def create_service(**overrides: Any) -> Service:
    """A service (non-passport by default)."""
    n = next(_ids)
    code = overrides.pop("code", f"test.service_{n}")
    values = dict(
        code=code,
        group=code.split(".")[0],
        name_ar=f"خدمة {n}",
        name_en=f"Service {n}",
        avg_service_minutes=10,
        ticket_prefix=chr(ord("A") + n % 26),
        high_demand=False,
        eligibility="none",
    )
    values.update(overrides)
    service = Service(**values)
    db.session.add(service)
    db.session.commit()
    return service


def create_centre(**overrides: Any) -> Centre:
    """A one-stop centre in Amman, open every day 08:00–15:00, with `counters` counters (default 2)."""
    n = next(_ids)
    counters = overrides.pop("counters", 2)
    values = dict(
        id=f"centre-{n}",
        name_ar=f"مركز {n}",
        name_en=f"Centre {n}",
        city="Amman",
        kind="one_stop",
        timezone="Asia/Amman",
        weekly_hours=WEEKDAYS_OPEN,
        address_ar="عمّان",
        address_en="Amman",
    )
    values.update(overrides)
    centre = Centre(**values)
    db.session.add(centre)
    for number in range(1, counters + 1):
        db.session.add(
            Counter(centre_id=centre.id, number=number, name_ar=f"شباك {number}", name_en=f"Counter {number}")
        )
    db.session.commit()
    return centre


def create_offering(
    centre: Centre | None = None, service: Service | None = None, **overrides: Any
) -> Offering:
    """A service offered at a centre (20-minute slots, 2 seats)."""
    centre = centre or create_centre()
    service = service or create_service()
    values = dict(centre_id=centre.id, service_code=service.code, slot_minutes=20, capacity=2)
    values.update(overrides)
    offering = Offering(**values)
    db.session.add(offering)
    db.session.commit()
    return offering


def create_confirmed_booking(
    account_id: int, offering_id: int, start: dt.datetime, *, status: str = "confirmed", booked_at=None
):
    """A booking of a slot of its own starting at `start` (rows written directly, as booking would)."""
    from zoneinfo import ZoneInfo

    from booking.models import Booking, Slot

    offering = db.session.get(Offering, offering_id)
    slot = Slot(
        offering_id=offering.id,
        start=start,
        end=start + dt.timedelta(minutes=offering.slot_minutes),
        local_date=start.astimezone(ZoneInfo(offering.centre.timezone)).date(),
        capacity=offering.capacity,
        booked=1,
        open=True,
    )
    db.session.add(slot)
    db.session.flush()
    booked_at = booked_at or clock.now()
    booking = Booking(
        reference=f"BK-T{slot.id:05d}",
        account_id=account_id,
        slot_id=slot.id,
        offering_id=offering.id,
        centre_id=offering.centre_id,
        service_code=offering.service_code,
        service_group=offering.service.group,
        kind="regular",
        status=status,
        holds_seat=True,
        created_at=booked_at,
        confirmed_at=booked_at,
    )
    db.session.add(booking)
    db.session.commit()
    return booking


def kiosk_headers(centre_id: str) -> dict[str, str]:
    """A kiosk bearer token for a centre."""
    _, token = create_kiosk(centre_id=centre_id, name="test kiosk")
    return {"Authorization": f"Bearer {token}"}


def auth_headers(account: Account, language: str = "en") -> dict[str, str]:
    """Bearer headers for an account, without going through the sign-in endpoint."""
    token, _ = issue_access_token(
        account_id=account.id,
        role=account.role,
        centre_id=account.centre_id,
        language=account.language,
        phone=account.phone,
    )
    return {"Authorization": f"Bearer {token}", "Accept-Language": language}


class Make:
    """Factories bound to an app: each call runs in its own app context and returns detached rows.

    Tests that send requests must not hold an app context open (requests would share its session
    and `g`); they build data through `make` and read back through `make.fresh`.
    """

    def __init__(self, app) -> None:
        self.app = app

    def _run(self, func, *args, **kwargs):
        with self.app.app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()

    def person(self, **kw):
        return self._run(create_person, **kw)

    def account(self, role: str = "citizen", **kw):
        return self._run(create_account, role, **kw)

    def citizen(self, **kw):
        return self._run(create_account, "citizen", **kw)

    def minor(self, *guardians, **kw):
        return self._run(create_minor, guardians=list(guardians), **kw)

    def staff(self, centre, role: str = "staff", **kw):
        return self._run(create_account, role, centre_id=centre.id, **kw)

    def service(self, **kw):
        return self._run(create_service, **kw)

    def centre(self, **kw):
        return self._run(create_centre, **kw)

    def offering(self, centre=None, service=None, **kw):
        return self._run(create_offering, centre, service, **kw)

    def confirmed_booking(self, account, offering, start, **kw):
        return self._run(create_confirmed_booking, account.id, offering.id, start, **kw)

    def kiosk_headers(self, centre) -> dict[str, str]:
        return self._run(kiosk_headers, centre.id)

    def headers(self, account, language: str = "en") -> dict[str, str]:
        return self._run(auth_headers, account, language)

    def call(self, func, *args, **kwargs):
        """Run any service function in a fresh app context."""
        return self._run(func, *args, **kwargs)

    def fresh(self, model, key):
        """Read a row as the database has it now."""
        return self._run(lambda: db.session.get(model, key))

    def race(self, func, args, workers: int = 50) -> list:
        """Run func(arg) for every arg on real threads, each in its own app context; refusals are returned."""
        from concurrent.futures import ThreadPoolExecutor

        from app.errors import AppError

        def run(arg):
            with self.app.app_context():
                try:
                    return func(arg)
                except AppError as error:
                    return error
                finally:
                    db.session.remove()

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, list(args)))
