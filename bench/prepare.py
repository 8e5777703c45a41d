"""Bench data on top of the demo data: many verified citizens, 20 clerks at 20 counters, a deep queue.

Runs inside an app context of the bench environment (PostgreSQL + Redis). Citizens are written straight
into the registry and account tables with ONE argon2 hash reused (hashing 4,000 passwords would take
minutes and measures nothing), and their access tokens are minted with the app's own
`app.security.issue_access_token`, so the bench needs no login storm: the JWT check on every request is
exactly the one a phone's token goes through.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from sqlalchemy import func, insert, select, text

from app import clock
from app.accounts.models import Account
from app.accounts.services import create_kiosk, hash_password
from app.catalogue.models import Centre, Counter, Offering, Service
from app.extensions import db
from app.registry.models import Guardianship, RegistryPerson
from app.tokens import issue_access_token

CENTRE = "amman-muqabalain"
HOT_SERVICE = "passport.renew"
# Open around the clock: tickets are issued only while a centre is open, and the bench runs at any hour.
VISIT_CENTRE = "queen-alia-airport"
BENCH_NID_PREFIX = "97"  # demo people are 999…/998…: no clash
BENCH_MINOR_PREFIX = "96"  # their children
BENCH_PASSWORD = "Bench-pass-2026"


def create_citizens(count: int, *, start: int = 0) -> list[tuple[int, str]]:
    """Verified resident citizens `start`..`count - 1` whose passport expires soon (may renew); returns
    (id, token) of every bench citizen."""
    today = clock.now().date()
    now = clock.now()
    password_hash = hash_password(BENCH_PASSWORD)
    people, accounts = [], []
    for n in range(start, count):
        nid = f"{BENCH_NID_PREFIX}{n:08d}"
        born = dt.date(1960 + n % 40, 1 + n % 12, 1 + n % 28)
        people.append(
            dict(
                national_id=nid,
                full_name_ar=f"مواطن اختبار {n}",
                full_name_en=f"Bench Citizen {n}",
                date_of_birth=born,
                passport_number=f"B{n:07d}",
                passport_expiry=today + dt.timedelta(days=30 + n % 100),
                residence_country="JO",
                disability=False,
            )
        )
        accounts.append(
            dict(
                national_id=nid,
                role="citizen",
                full_name=f"Bench Citizen {n}",
                date_of_birth=born,
                phone=f"+96277{n:07d}",
                phone_verified_at=now,
                password_hash=password_hash,
                language="en" if n % 2 else "ar",
                residence_country="JO",
                failed_logins=0,
                created_at=now,
            )
        )
    for chunk in range(0, len(people), 1000):
        db.session.execute(insert(RegistryPerson), people[chunk : chunk + 1000])
        db.session.execute(insert(Account), accounts[chunk : chunk + 1000])
    db.session.commit()
    rows = db.session.execute(
        select(Account.id, Account.language, Account.phone)
        .where(Account.national_id.like(f"{BENCH_NID_PREFIX}%"))
        .order_by(Account.id)
    ).all()
    return [
        (
            row.id,
            issue_access_token(
                account_id=row.id, role="citizen", centre_id=None, language=row.language, phone=row.phone
            )[0],
        )
        for row in rows
    ]


def create_dependents(per_citizen: int = 2) -> list[str]:
    """`per_citizen` minors for every bench citizen, each passport due for renewal (may book the hot
    service); returns one JSON applicant list a citizen (themselves first), in account id order."""
    today = clock.now().date()
    rows = db.session.execute(
        select(Account.national_id)
        .where(Account.national_id.like(f"{BENCH_NID_PREFIX}%"))
        .order_by(Account.id)
    ).all()
    people, links, lists = [], [], []
    for n, (guardian,) in enumerate(rows):
        family = [guardian]
        for k in range(per_citizen):
            nid = f"{BENCH_MINOR_PREFIX}{n:07d}{k}"
            people.append(
                dict(
                    national_id=nid,
                    full_name_ar=f"طفل اختبار {n}-{k}",
                    full_name_en=f"Bench Child {n}-{k}",
                    date_of_birth=today.replace(year=today.year - 6 - k, day=min(today.day, 28)),
                    passport_number=f"M{n:06d}{k}",
                    passport_expiry=today + dt.timedelta(days=30 + n % 100),
                    residence_country="JO",
                    disability=False,
                )
            )
            links.append(dict(guardian_national_id=guardian, minor_national_id=nid))
            family.append(nid)
        lists.append("[" + ", ".join(f'"{nid}"' for nid in family) + "]")
    for chunk in range(0, len(people), 1000):
        db.session.execute(insert(RegistryPerson), people[chunk : chunk + 1000])
        db.session.execute(insert(Guardianship), links[chunk : chunk + 1000])
    db.session.commit()
    return lists


def create_counters_and_clerks(
    count: int, *, centre: str = CENTRE, nid_prefix: str = "96"
) -> list[tuple[int, str]]:
    """`count` counters at the centre, each with its own clerk; returns (counter_id, clerk token)."""
    now = clock.now()
    existing = set(db.session.scalars(select(Counter.number).where(Counter.centre_id == centre)))
    for number in range(1, count + 1):
        if number not in existing:
            db.session.add(
                Counter(
                    centre_id=centre, number=number, name_ar=f"شباك {number}", name_en=f"Counter {number}"
                )
            )
    password_hash = hash_password(BENCH_PASSWORD)
    for n in range(count):
        db.session.add(
            Account(
                national_id=f"{nid_prefix}{n:08d}",
                role="staff",
                centre_id=centre,
                full_name=f"Bench Clerk {n}",
                date_of_birth=dt.date(1990, 1, 1 + n % 28),
                phone=f"+96278{n:07d}",
                phone_verified_at=now,
                password_hash=password_hash,
                language="en",
                residence_country="JO",
            )
        )
    db.session.commit()
    counters = db.session.scalars(
        select(Counter.id).where(Counter.centre_id == centre).order_by(Counter.number).limit(count)
    ).all()
    clerks = db.session.scalars(
        select(Account.id)
        .where(Account.national_id.like(f"{nid_prefix}%"), Account.role == "staff")
        .order_by(Account.id)
    ).all()
    return [
        (counter_id, issue_access_token(account_id=clerk, role="staff", centre_id=centre, language="en")[0])
        for counter_id, clerk in zip(counters, clerks, strict=True)
    ]


def kiosk_token(centre: str = CENTRE) -> str:
    """A kiosk of the centre (what `flask --app wsgi kiosk-token CENTRE` prints)."""
    return create_kiosk(centre_id=centre, name=f"bench-kiosk-{centre}")[1]


def display_token() -> str:
    """A hall display of the centre (what `flask --app wsgi display-token CENTRE` prints): the screens open
    the stream with it, as a hall's screens do, past the per-address cap on anonymous streams."""
    from app.accounts.services import create_display

    return create_display(centre_id=CENTRE, name="bench-display")[1]


def centre_services(centre: str = CENTRE) -> list[str]:
    """The services the centre offers (what the counters open for)."""
    return list(
        db.session.scalars(
            select(Offering.service_code)
            .where(Offering.centre_id == centre, Offering.active.is_(True))
            .order_by(Offering.service_code)
        )
    )


def bookable_slots(*, service: str = HOT_SERVICE, days: int = 29) -> list[tuple[int, int, dt.datetime]]:
    """Open slots of the centre's service past the cut-off and within the resident horizon."""
    now = clock.now()
    rows = db.session.execute(
        text(
            "SELECT s.id, s.capacity, s.start FROM slots s JOIN offerings o ON o.id = s.offering_id "
            "WHERE o.centre_id = :centre AND o.service_code = :service AND s.open "
            "AND s.start > :earliest AND s.start < :latest ORDER BY s.start"
        ),
        {
            "centre": CENTRE,
            "service": service,
            "earliest": now + dt.timedelta(hours=3),
            "latest": now + dt.timedelta(days=days),
        },
    ).all()
    return [(r.id, r.capacity, r.start) for r in rows]


def seed_visits(depth: int, *, multi_share: float = 0.3, seed: int = 14) -> int:
    """`depth` walk-in tickets issued at the centre open around the clock, `multi_share` of them for two or
    three of its services in one visit (issued as a kiosk would, so the centre must be open)."""
    import random

    from ticketing.services import issue_walk_in_ticket

    rng = random.Random(seed)
    codes = centre_services(VISIT_CENTRE)
    for _ in range(depth):
        visit = rng.sample(codes, rng.choice((2, 3))) if rng.random() < multi_share else [rng.choice(codes)]
        issue_walk_in_ticket(centre_id=VISIT_CENTRE, services=visit)
    return depth


def seed_queue(depth: int, centre_id: str = CENTRE) -> int:
    """`depth` waiting walk-in tickets at the centre, spread over its services (numbers kept unique)."""
    centre = db.session.get(Centre, centre_id)
    local_date = clock.now().astimezone(zoneinfo.ZoneInfo(centre.timezone)).date()
    services = db.session.execute(
        select(Service.code, Service.ticket_prefix)
        .join(Offering, Offering.service_code == Service.code)
        .where(Offering.centre_id == centre_id, Offering.active.is_(True))
        .order_by(Service.code)
    ).all()
    per_service = max(1, depth // len(services))
    start = clock.now() - dt.timedelta(hours=2)
    total = 0
    for code, prefix in services:
        last = (
            db.session.scalar(
                text(
                    "SELECT last_seq FROM ticket_sequences WHERE centre_id = :c AND service_code = :s "
                    "AND local_date = :d"
                ),
                {"c": centre_id, "s": code, "d": local_date},
            )
            or 0
        )
        rows = [
            dict(
                centre_id=centre_id,
                service_code=code,
                number=f"{prefix}-{last + i:03d}",
                seq=last + i,
                local_date=local_date,
                source="walk_in",
                priority=2,
                vulnerable=False,
                status="waiting",
                issued_at=start + dt.timedelta(milliseconds=(last + i) * 10),
                recall_count=0,
            )
            for i in range(1, per_service + 1)
        ]
        from ticketing.models import Ticket

        for chunk in range(0, len(rows), 2000):
            db.session.execute(insert(Ticket), rows[chunk : chunk + 2000])
        db.session.execute(
            text(
                "INSERT INTO ticket_sequences (centre_id, service_code, local_date, last_seq) "
                "VALUES (:c, :s, :d, :n) ON CONFLICT (centre_id, service_code, local_date) "
                "DO UPDATE SET last_seq = EXCLUDED.last_seq"
            ),
            {"c": centre_id, "s": code, "d": local_date, "n": last + per_service},
        )
        total += per_service
    db.session.commit()
    return total


def reset_bookings() -> None:
    """Every seat free again, no booking, no abuse record: the next scenario starts from the same state."""
    db.session.execute(text("DELETE FROM bookings"))
    db.session.execute(text("DELETE FROM device_bindings"))
    db.session.execute(text("DELETE FROM abuse_events"))
    db.session.execute(text("UPDATE slots SET booked = 0 WHERE booked <> 0"))
    db.session.commit()


def write_lines(path: Path, values) -> Path:
    """One value a line (what the wrk scripts read)."""
    path.write_text("".join(f"{v}\n" for v in values))
    return path


def count_citizens() -> int:
    return db.session.scalar(select(func.count()).where(Account.national_id.like(f"{BENCH_NID_PREFIX}%")))
