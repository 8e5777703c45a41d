"""Entering a draw: one row per person, no slot touched; withdrawing before the close.

The close (`booking.draw_run`) takes the entries gate exclusively, so no entry commits after the close
has read the entries.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets

from sqlalchemy import and_, bindparam, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Centre, Service
from app.dialect import on_postgres
from app.extensions import db
from booking import errors
from booking.abuse import check_applicants, check_eligibility, get_citizen, record_refusal
from booking.applicants import Applicant, resolve_applicants
from booking.draws import active_booking_in_group, check_group_quota, get_draw, own_national_id
from booking.models import Booking, BookingSuspension
from booking.release_models import UNDRAWN_STATUSES, Draw, DrawEntry

ENTRIES_GATE_NAMESPACE = 7321


def entries_gate(draw_id: int, *, closing: bool = False) -> None:
    """Entrants hold a draw's gate shared for their transaction, the close takes it exclusively.

    So no entry commits after the close has read the entries. A transaction-scoped advisory lock, not
    `FOR SHARE` on the draw row: thousands of concurrent shared row locks would each rewrite the row's
    multixact; advisory locks live in the lock manager only. SQLite serialises writers anyway.
    """
    if on_postgres():
        function = "pg_advisory_xact_lock" if closing else "pg_advisory_xact_lock_shared"
        db.session.execute(text(f"SELECT {function}({ENTRIES_GATE_NAMESPACE}, :d)"), {"d": draw_id})


def _check_entrant(
    account: Account,
    person: Applicant,
    service: Service,
    *,
    group: str,
    today: dt.date,
    tz: str,
    draw_id: int,
) -> None:
    """Suspensions, eligibility and the group quota of the person entered (an entry counts in its group)."""
    check_applicants(account, [person], service, now=clock.now(), tz=tz, today=today)
    check_group_quota(person.national_id, group, other_than_draw=draw_id)


_INSERT_ENTRY = DrawEntry.__table__.insert().returning(DrawEntry.__table__.c.id)


@functools.cache
def _entrant_statement():
    """The draw (with its centre's zone and service) and the entrant's account in one round trip, with
    whether any suspension in force, active booking of the group or live entry of another undrawn draw of
    the group stands in the way of the citizen entering for themselves (then the checks run one by one,
    to refuse with their details).

    Built once per process; the draw row is read afresh (`populate_existing`), as the close may have moved
    it on since this session last saw it."""
    group = Draw.service_group
    suspended = (
        select(BookingSuspension.id)
        .where(
            BookingSuspension.account_id == Account.id,
            BookingSuspension.lifted_at.is_(None),
            BookingSuspension.until > bindparam("now"),
            or_(
                BookingSuspension.scope == "all",
                and_(BookingSuspension.scope == "high_demand", Service.high_demand),
            ),
        )
        .exists()
    )
    booked = active_booking_in_group(Account.national_id, group, now=bindparam("now")).exists()
    # Not `live_entry_in_group`: it names `Draw`, which here is the draw being entered (the outer query's
    # row, to which a subquery would correlate); the other draws need an alias of their own.
    other_draws = aliased(Draw)
    entered = (
        select(DrawEntry.id)
        .join(other_draws, other_draws.id == DrawEntry.draw_id)
        .where(
            DrawEntry.national_id == Account.national_id,
            DrawEntry.service_group == group,
            DrawEntry.status == "entered",
            other_draws.status.in_(UNDRAWN_STATUSES),
            DrawEntry.draw_id != Draw.id,
        )
        .exists()
    )
    return (
        select(Draw, Centre.timezone, Service, Account, or_(suspended, booked, entered).label("in_the_way"))
        .join(Centre, Centre.id == Draw.centre_id)
        .join(Service, Service.code == Draw.service_code)
        .outerjoin(Account, Account.id == bindparam("account_id"))
        .where(Draw.id == bindparam("draw_id"))
        .execution_options(populate_existing=True)
    )


def enter_draw(
    *, account_id: int, draw_id: int, part_of_day: str = "any", applicant: str | None = None
) -> DrawEntry:
    """Enter a draw: one row, no slot touched (201 entered); refusals write nothing (commits).

    `applicant` names a minor the citizen is a guardian of on the draw's first day (anyone else: 403
    `not_a_dependent`, recorded); default the citizen. The seat a win gives is that person's. A second
    entry of the same person is refused by the unique (draw, national id) constraint itself.
    """
    try:
        entries_gate(draw_id)
        now = clock.now()
        params = {"draw_id": draw_id, "account_id": account_id, "now": now}
        row = db.session.execute(_entrant_statement(), params).first()
        if row is None:
            raise errors.DrawNotFound()
        draw, timezone, service, account, in_the_way = row
        if draw.status != "open" or now >= draw.entries_close_at:
            raise errors.DrawClosed(
                details={"draw_id": draw.id, "entries_close_at": draw.entries_close_at.isoformat()}
            )
        if now < draw.entries_open_at:
            raise errors.DrawNotOpenYet(
                details={"draw_id": draw.id, "entries_open_at": draw.entries_open_at.isoformat()}
            )
        if account is None or account.role != "citizen" or not account.is_verified or in_the_way or applicant:
            # Refused, or an entry for someone else: the checks one by one (each refusal with its details).
            account = get_citizen(account_id)
            (person,) = resolve_applicants(
                account=account, national_ids=[applicant] if applicant else None, on=draw.days_from
            )
            _check_entrant(
                account,
                person,
                service,
                group=draw.service_group,
                today=draw.days_from,
                tz=timezone,
                draw_id=draw.id,
            )
        else:
            # The citizen for themselves, with no suspension, booking or entry in the way (read above):
            # what is left is their eligibility, from the registry.
            (person,) = resolve_applicants(account=account, national_ids=None, on=draw.days_from)
            check_eligibility(account=account, service=service, today=draw.days_from)
        values = {
            "draw_id": draw.id,
            "account_id": account_id,
            "national_id": person.national_id,
            "service_group": draw.service_group,
            "entry_token": secrets.token_hex(16),
            "part_of_day": part_of_day,
            "status": "entered",
            "created_at": now,
        }
        # One INSERT … RETURNING id (no unit of work for one row); the answer is the row as written.
        entry_id = db.session.execute(_INSERT_ENTRY, values).scalar_one()
        db.session.commit()
        entry = DrawEntry(id=entry_id, **values)
        entry._booking_cache = None  # a new entry has no booking (the answer's `reference` needs no read)
    except IntegrityError as exc:
        db.session.rollback()
        raise errors.AlreadyEntered(details={"draw_id": draw_id}) from exc
    except errors.NotADependent as refusal:
        db.session.rollback()
        record_refusal(refusal, account_id=account_id, device_id=None, ip=None, draw_id=draw_id)
        raise
    except Exception:
        db.session.rollback()
        raise
    return entry


def withdraw_entry(*, account_id: int, draw_id: int, applicant: str | None = None) -> DrawEntry:
    """Withdraw the citizen's entry (or the one made for `applicant`) before the close (final)."""
    draw = get_draw(draw_id=draw_id)
    entry = db.session.scalar(
        select(DrawEntry).where(
            DrawEntry.draw_id == draw_id,
            DrawEntry.account_id == account_id,
            DrawEntry.national_id == (applicant or own_national_id(account_id)),
        )
    )
    if entry is None:
        raise errors.EntryNotFound()
    if entry.status == "withdrawn":
        return entry
    now = clock.now()
    if draw.status != "open" or now >= draw.entries_close_at:
        raise errors.DrawClosed(details={"draw_id": draw.id})
    entries_gate(draw_id)
    changed = db.session.execute(
        update(DrawEntry)
        .where(DrawEntry.id == entry.id, DrawEntry.status == "entered")
        .values(status="withdrawn", withdrawn_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        db.session.rollback()
        raise errors.DrawClosed(details={"draw_id": draw.id})
    db.session.commit()
    db.session.expire_all()
    return db.session.get(DrawEntry, entry.id)


def list_my_entries(*, account_id: int):
    """The citizen's entries, newest first (a query to paginate)."""
    return (
        select(DrawEntry)
        .where(DrawEntry.account_id == account_id)
        .order_by(DrawEntry.created_at.desc(), DrawEntry.id.desc())
    )


def entry_booking(entry_id: int) -> Booking | None:
    """The booking an entry won or was offered, if any."""
    return db.session.scalar(select(Booking).where(Booking.draw_entry_id == entry_id))
