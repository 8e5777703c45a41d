"""The demo data the README lists: centres, embassies, services, registry people and demo accounts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from app import clock
from app.accounts.models import Account
from app.accounts.services import hash_password
from app.catalogue.models import Centre, Counter, Offering, Service
from app.extensions import db
from app.registry.models import Guardianship, RegistryPerson

DEMO_PASSWORD = "Demo-pass-2026"

JORDAN_WEEK = {d: [["08:00", "15:00"]] for d in ("sun", "mon", "tue", "wed", "thu")}
GULF_WEEK = {d: [["09:00", "14:00"]] for d in ("sun", "mon", "tue", "wed", "thu")}
UAE_WEEK = {d: [["09:00", "14:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
US_WEEK = {d: [["09:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
# Open around the clock, so the queue can be tried at any hour.
AIRPORT_WEEK = {d: [["00:00", "24:00"]] for d in ("sun", "mon", "tue", "wed", "thu", "fri", "sat")}

SERVICES: list[dict[str, Any]] = [
    dict(
        code="passport.renew",
        name_ar="تجديد جواز السفر",
        name_en="Passport renewal",
        prefix="P",
        agency_ar="دائرة الأحوال المدنية والجوازات",
        agency_en="Civil Status and Passports Department",
        minutes=12,
        high_demand=True,
        eligibility="passport_renew",
    ),
    dict(
        code="passport.issue",
        name_ar="إصدار جواز سفر",
        name_en="First passport",
        prefix="N",
        agency_ar="دائرة الأحوال المدنية والجوازات",
        agency_en="Civil Status and Passports Department",
        minutes=15,
        high_demand=True,
        eligibility="passport_issue",
    ),
    dict(
        code="civil.non_conviction",
        name_ar="شهادة عدم محكومية",
        name_en="Non-conviction certificate",
        prefix="C",
        agency_ar="وزارة العدل",
        agency_en="Ministry of Justice",
        minutes=6,
    ),
    dict(
        code="military.booklet_deferral",
        name_ar="تأجيل دفتر خدمة العلم",
        prefix="M",
        name_en="Military service booklet deferral",
        agency_ar="مديرية التجنيد",
        agency_en="Recruitment Directorate",
        minutes=10,
    ),
    dict(
        code="gam.property_tax",
        name_ar="الاستعلام عن ضريبة الأبنية ودفعها",
        prefix="T",
        name_en="Property tax enquiry and payment",
        agency_ar="أمانة عمّان الكبرى",
        agency_en="Greater Amman Municipality",
        minutes=8,
    ),
    dict(
        code="traffic.violation_objection",
        name_ar="موعد الاعتراض على مخالفة سير",
        prefix="V",
        name_en="Traffic violation objection",
        agency_ar="وزارة العدل",
        agency_en="Ministry of Justice",
        minutes=10,
    ),
    dict(
        code="lands.site_plan",
        name_ar="مخطط موقع تنظيمي",
        name_en="Site plan",
        prefix="L",
        agency_ar="دائرة الأراضي والمساحة",
        agency_en="Department of Lands and Survey",
        minutes=8,
    ),
    dict(
        code="lease.registration",
        name_ar="تسجيل عقد إيجار",
        name_en="Lease contract registration",
        prefix="R",
        agency_ar="أمانة عمّان الكبرى",
        agency_en="Greater Amman Municipality",
        minutes=10,
    ),
    dict(
        code="occupancy.permit",
        name_ar="إذن أشغال",
        name_en="Occupancy permit",
        prefix="O",
        agency_ar="أمانة عمّان الكبرى",
        agency_en="Greater Amman Municipality",
        minutes=12,
    ),
]
ALL_SERVICES = [s["code"] for s in SERVICES]
PASSPORTS = ["passport.renew", "passport.issue"]
# Release day: this offering's seats are given by draws (the demo opens one).
DEMO_DRAW_OFFERING = ("irbid", "passport.issue")
ONE_STOP_SET = [
    *PASSPORTS,
    "civil.non_conviction",
    "military.booklet_deferral",
    "traffic.violation_objection",
]
EMBASSY_SET = [*PASSPORTS, "civil.non_conviction"]

CENTRES: list[dict[str, Any]] = [
    dict(
        id="amman-muqabalain",
        name_ar="مركز الخدمات الحكومية الشامل - المقابلين",
        name_en="Comprehensive Government Services Centre - Muqabalain",
        city="Amman",
        kind="one_stop",
        tz="Asia/Amman",
        hours=JORDAN_WEEK,
        counters=8,
        services=ALL_SERVICES,
        remote=True,
        address_ar="شارع الحرية، المقابلين، عمّان",
        address_en="Al-Hurriyah Street, Al-Muqabalain, Amman",
    ),
    dict(
        id="queen-alia-airport",
        name_ar="مركز الخدمات الحكومية - مطار الملكة علياء الدولي",
        name_en="Government Services Centre - Queen Alia International Airport",
        city="Amman",
        kind="one_stop",
        tz="Asia/Amman",
        hours=AIRPORT_WEEK,
        counters=4,
        services=ALL_SERVICES,
        address_ar="مطار الملكة علياء الدولي",
        address_en="Queen Alia International Airport",
    ),
    dict(
        id="irbid",
        name_ar="مركز الخدمات الحكومية الشامل - إربد",
        name_en="Comprehensive Services Centre - Irbid",
        city="Irbid",
        kind="one_stop",
        tz="Asia/Amman",
        hours=JORDAN_WEEK,
        counters=6,
        services=ONE_STOP_SET,
        address_ar="شارع الجامعة، إربد",
        address_en="University Street, Irbid",
    ),
    dict(
        id="abdali",
        name_ar="مركز الخدمات الحكومية - مجمع العدل في العبدلي",
        name_en="Government Services Centre - Abdali Justice Complex",
        city="Amman",
        kind="one_stop",
        tz="Asia/Amman",
        hours=JORDAN_WEEK,
        counters=4,
        services=["civil.non_conviction", "traffic.violation_objection", "lease.registration"],
        address_ar="مجمع العدل، العبدلي، عمّان",
        address_en="Justice Complex, Abdali, Amman",
    ),
    dict(
        id="aqaba",
        name_ar="مركز الخدمات الحكومية الشامل - العقبة",
        name_en="Comprehensive Services Centre - Aqaba",
        city="Aqaba",
        kind="one_stop",
        tz="Asia/Amman",
        hours=JORDAN_WEEK,
        counters=4,
        services=ONE_STOP_SET,
        address_ar="العقبة",
        address_en="Aqaba",
    ),
    dict(
        id="tafileh",
        name_ar="مركز الخدمات الحكومية الشامل - الطفيلة",
        name_en="Comprehensive Services Centre - Tafileh",
        city="Tafileh",
        kind="one_stop",
        tz="Asia/Amman",
        hours=JORDAN_WEEK,
        counters=3,
        services=ONE_STOP_SET,
        address_ar="الطفيلة",
        address_en="Tafileh",
    ),
    dict(
        id="karak",
        name_ar="مركز الخدمات الحكومية الشامل - الكرك",
        name_en="Comprehensive Services Centre - Karak",
        city="Karak",
        kind="one_stop",
        tz="Asia/Amman",
        hours=JORDAN_WEEK,
        counters=3,
        services=ONE_STOP_SET,
        address_ar="الكرك",
        address_en="Karak",
    ),
    dict(
        id="maan",
        name_ar="مركز الخدمات الحكومية الشامل - معان",
        name_en="Comprehensive Services Centre - Ma'an",
        city="Ma'an",
        kind="one_stop",
        tz="Asia/Amman",
        hours=JORDAN_WEEK,
        counters=3,
        services=ONE_STOP_SET,
        address_ar="معان",
        address_en="Ma'an",
    ),
    dict(
        id="embassy-riyadh",
        name_ar="سفارة المملكة الأردنية الهاشمية - الرياض",
        name_en="Embassy of Jordan - Riyadh",
        city="Riyadh",
        kind="embassy",
        tz="Asia/Riyadh",
        hours=GULF_WEEK,
        counters=2,
        services=EMBASSY_SET,
        address_ar="حي السفارات، الرياض",
        address_en="Diplomatic Quarter, Riyadh",
    ),
    dict(
        id="embassy-abudhabi",
        name_ar="سفارة المملكة الأردنية الهاشمية - أبوظبي",
        name_en="Embassy of Jordan - Abu Dhabi",
        city="Abu Dhabi",
        kind="embassy",
        tz="Asia/Dubai",
        hours=UAE_WEEK,
        counters=2,
        services=EMBASSY_SET,
        address_ar="أبوظبي",
        address_en="Abu Dhabi",
    ),
    dict(
        id="embassy-washington",
        name_ar="سفارة المملكة الأردنية الهاشمية - واشنطن",
        name_en="Embassy of Jordan - Washington",
        city="Washington",
        kind="embassy",
        tz="America/New_York",
        hours=US_WEEK,
        counters=2,
        services=EMBASSY_SET,
        address_ar="3504 International Drive NW, Washington, DC 20008",
        address_en="3504 International Drive NW, Washington, DC 20008",
    ),
]

# Demo staff: (number, role, centre). 9980000001-04 at Muqabalain; 11-13 at the airport, open all day.
STAFF = (
    (1, "staff", "amman-muqabalain"),
    (2, "staff", "amman-muqabalain"),
    (3, "staff", "amman-muqabalain"),
    (4, "supervisor", "amman-muqabalain"),
    (11, "staff", "queen-alia-airport"),
    (12, "staff", "queen-alia-airport"),
    (13, "supervisor", "queen-alia-airport"),
    (99, "admin", None),
)

EXPAT_COUNTRIES = {"US": "+1202555", "AE": "+9715012", "SA": "+9665012"}


def _upsert(model, key: Any, **values: Any):
    row = db.session.get(model, key)
    if row is None:
        row = model(**values)
        db.session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    return row


# Registry people without an account, so registration can be tried (the README lists them):
# national id -> (date of birth, days until their passport expires, or None for none).
UNREGISTERED_PEOPLE: dict[str, tuple[dt.date, int | None]] = {
    "9990000301": (dt.date(1992, 4, 12), 60),
    "9990000302": (dt.date(1987, 9, 3), 120),
    "9990000303": (dt.date(2001, 1, 25), 1500),
    "9990000304": (dt.date(1979, 11, 30), None),
    "9990000305": (dt.date(1995, 6, 18), None),
}


def _registry_people(today: dt.date) -> list[dict[str, Any]]:
    people = []
    for n in range(1, 51):
        nid = f"99900000{n:02d}"
        if n <= 20:
            expiry = today + dt.timedelta(days=20 + 7 * n)  # within 180 days: may renew
        elif n <= 35:
            expiry = today + dt.timedelta(days=400 + 30 * n)  # valid for years: may not renew
        else:
            expiry = None  # never held one: may apply for a first passport
        born = dt.date(1950, 3, 1) if n in (48, 49, 50) else dt.date(1975 + n % 25, 1 + n % 12, 1 + n % 28)
        people.append(
            dict(
                national_id=nid,
                full_name_ar=f"مواطن تجريبي {n}",
                full_name_en=f"Demo Citizen {n}",
                date_of_birth=born,
                passport_number=f"P{n:07d}" if expiry else None,
                passport_expiry=expiry,
                residence_country="JO",
                disability=n == 47,
                phone=f"+9627900000{n:02d}",
            )
        )
    countries = list(EXPAT_COUNTRIES)
    for n in range(101, 111):
        country = countries[(n - 101) % 3]
        people.append(
            dict(
                national_id=f"9990000{n}",
                full_name_ar=f"مغترب تجريبي {n}",
                full_name_en=f"Demo Expatriate {n}",
                date_of_birth=dt.date(1985, 1 + n % 12, 10),
                passport_number=f"P{n:07d}",
                passport_expiry=today + dt.timedelta(days=60 + n % 10),
                residence_country=country,
                disability=False,
                phone=f"{EXPAT_COUNTRIES[country]}{n:04d}",
            )
        )
    for n, role, centre_id in STAFF:
        people.append(
            dict(
                national_id=f"99800000{n:02d}",
                full_name_ar=f"موظف تجريبي {n}",
                full_name_en=f"Demo {role.title()} {n}",
                date_of_birth=dt.date(1988, 5, n % 28 + 1),
                passport_number=None,
                passport_expiry=None,
                residence_country="JO",
                disability=False,
                phone=f"+9627810000{n:02d}",
                role=role,
                centre_id=centre_id,
            )
        )
    for n, (nid, (born, expires_in)) in enumerate(UNREGISTERED_PEOPLE.items(), start=301):
        people.append(
            dict(
                national_id=nid,
                full_name_ar=f"شخص غير مسجل {n}",
                full_name_en=f"Unregistered Person {n}",
                date_of_birth=born,
                passport_number=f"P{n:07d}" if expires_in is not None else None,
                passport_expiry=today + dt.timedelta(days=expires_in) if expires_in is not None else None,
                residence_country="JO",
                disability=False,
                phone=None,
                role=None,
            )
        )
    return people


def _years_before(today: dt.date, years: int) -> dt.date:
    return today.replace(year=today.year - years, day=min(today.day, 28))


# Families: minors (no accounts) and their guardians: (minor, guardian, age in years, passport expiry
# in days from today, or None for no passport).
MINORS = (
    ("9990000201", "9990000001", 12, -40),  # passport expired: may renew
    ("9990000202", "9990000001", 8, None),  # no passport: may apply for a first one
    ("9990000203", "9990000036", 5, None),
)


def _registry_minors(today: dt.date) -> list[dict[str, Any]]:
    minors = []
    for nid, _guardian, age, expiry_days in MINORS:
        n = int(nid[-3:])
        minors.append(
            dict(
                national_id=nid,
                full_name_ar=f"قاصر تجريبي {n}",
                full_name_en=f"Demo Minor {n}",
                date_of_birth=_years_before(today, age),
                passport_number=f"P{n:07d}" if expiry_days is not None else None,
                passport_expiry=today + dt.timedelta(days=expiry_days) if expiry_days is not None else None,
                residence_country="JO",
                disability=False,
            )
        )
    return minors


def load_demo_data() -> dict[str, int]:
    """Create or refresh every demo row (safe to run again)."""
    today = clock.now().date()
    _load_services()
    for c in CENTRES:
        _load_centre(c)
    people = _load_people(today)
    _load_families(today)
    db.session.commit()
    from app.catalogue.services import schedule_changed

    for c in CENTRES:
        schedule_changed.send(c["id"], offering_id=None)
    _demo_draw()
    return {"centres": len(CENTRES), "services": len(SERVICES), "people": len(people)}


def _load_services() -> None:
    for s in SERVICES:
        _upsert(
            Service,
            s["code"],
            code=s["code"],
            group=s["code"].split(".")[0],
            name_ar=s["name_ar"],
            name_en=s["name_en"],
            agency_ar=s["agency_ar"],
            agency_en=s["agency_en"],
            avg_service_minutes=s["minutes"],
            ticket_prefix=s["prefix"],
            high_demand=s.get("high_demand", False),
            eligibility=s.get("eligibility", "none"),
            active=True,
        )
    db.session.flush()


def _load_centre(c: dict[str, Any]) -> None:
    """A centre with its counters and offerings."""
    _upsert(
        Centre,
        c["id"],
        id=c["id"],
        name_ar=c["name_ar"],
        name_en=c["name_en"],
        city=c["city"],
        kind=c["kind"],
        timezone=c["tz"],
        weekly_hours=c["hours"],
        address_ar=c["address_ar"],
        address_en=c["address_en"],
        remote_tickets_enabled=c.get("remote", False),
        active=True,
    )
    db.session.flush()
    existing = {n for (n,) in db.session.execute(select(Counter.number).where(Counter.centre_id == c["id"]))}
    for number in range(1, c["counters"] + 1):
        if number not in existing:
            db.session.add(
                Counter(
                    centre_id=c["id"],
                    number=number,
                    name_ar=f"شباك {number}",
                    name_en=f"Counter {number}",
                )
            )
    offered = {
        o.service_code: o for o in db.session.scalars(select(Offering).where(Offering.centre_id == c["id"]))
    }
    for code in c["services"]:
        passport = code in PASSPORTS
        values = dict(
            slot_minutes=15 if passport else 20,
            capacity=4 if passport else 2,
            walk_in_share=25 if c["kind"] == "one_stop" and passport else 0,
            urgent_reserve_per_day=5 if passport else 0,
            active=True,
            allocation="draw" if (c["id"], code) == DEMO_DRAW_OFFERING else "first_come",
        )
        if code in offered:
            for name, value in values.items():
                setattr(offered[code], name, value)
        else:
            db.session.add(Offering(centre_id=c["id"], service_code=code, **values))


def _load_people(today: dt.date) -> list[dict[str, Any]]:
    """Registry people, and the accounts of those who have one (demo password, phone verified)."""
    password_hash = hash_password(DEMO_PASSWORD)
    verified_at = clock.now()
    people = _registry_people(today)
    for p in people:
        role = p.pop("role", "citizen")
        centre_id = p.pop("centre_id", None)
        phone = p.pop("phone")
        _upsert(RegistryPerson, p["national_id"], **p)
        if role is None:
            continue  # in the registry only: whoever registers them keeps their own account and password
        account = db.session.scalar(select(Account).where(Account.national_id == p["national_id"]))
        if account is None:
            account = Account(national_id=p["national_id"], password_hash=password_hash)
            db.session.add(account)
        account.role = role
        account.centre_id = centre_id if role in ("staff", "supervisor") else None
        account.full_name = p["full_name_en"]
        account.date_of_birth = p["date_of_birth"]
        account.phone = phone
        account.phone_verified_at = account.phone_verified_at or verified_at
        account.language = "en" if p["residence_country"] == "US" else "ar"
        account.residence_country = p["residence_country"]
        account.password_hash = password_hash
        account.failed_logins = 0
        account.locked_until = None
    return people


def _load_families(today: dt.date) -> None:
    """Minors in the registry and their guardians."""
    for minor in _registry_minors(today):
        _upsert(RegistryPerson, minor["national_id"], **minor)
    db.session.flush()
    for minor, guardian, _age, _expiry in MINORS:
        _upsert(
            Guardianship,
            (guardian, minor),
            guardian_national_id=guardian,
            minor_national_id=minor,
        )


def _demo_draw() -> None:
    """An open draw for passport.issue at Irbid over days 21-27 ahead, closing in 7 days (once)."""
    import zoneinfo

    # The shell imports no domain statically; the demo reaches booking's service at run time.
    from booking.draws import create_draw
    from booking.release_models import Draw

    centre_id, service_code = DEMO_DRAW_OFFERING
    offering = db.session.scalar(
        select(Offering).where(Offering.centre_id == centre_id, Offering.service_code == service_code)
    )
    today = clock.now().astimezone(zoneinfo.ZoneInfo("Asia/Amman")).date()
    days_from, days_to = today + dt.timedelta(days=21), today + dt.timedelta(days=27)
    overlapping = db.session.scalar(
        select(Draw.id).where(
            Draw.offering_id == offering.id,
            Draw.status != "cancelled",
            Draw.days_from <= days_to,
            Draw.days_to >= days_from,
        )
    )
    if overlapping is not None:
        return
    admin = db.session.scalar(select(Account.id).where(Account.role == "admin").order_by(Account.id))
    now = clock.now()
    create_draw(
        admin_id=admin,
        centre_id=centre_id,
        service_code=service_code,
        days_from=days_from,
        days_to=days_to,
        entries_open_at=now,
        entries_close_at=now + dt.timedelta(days=7),
    )
