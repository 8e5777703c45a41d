"""Entering a draw: one row per person, no slot touched; withdrawing before the close.

The close (`booking.draw_run`) takes the entries gate exclusively, so no entry commits after the close
has read the entries.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Centre, Service
from app.dialect import on_postgres
from app.extensions import db
from booking import errors
from booking.abuse import check_applicants, get_citizen, record_refusal
from booking.applicants import Applicant, resolve_applicants
from booking.draws import check_group_quota, get_draw, own_national_id
from booking.models import Booking
from booking.release_models import Draw, DrawEntry

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
        row = db.session.execute(
            select(Draw, Centre.timezone, Service)
            .join(Centre, Centre.id == Draw.centre_id)
            .join(Service, Service.code == Draw.service_code)
            .where(Draw.id == draw_id)
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            raise errors.DrawNotFound()
        draw, timezone, service = row
        now = clock.now()
        if draw.status != "open" or now >= draw.entries_close_at:
            raise errors.DrawClosed(
                details={"draw_id": draw.id, "entries_close_at": draw.entries_close_at.isoformat()}
            )
        if now < draw.entries_open_at:
            raise errors.DrawNotOpenYet(
                details={"draw_id": draw.id, "entries_open_at": draw.entries_open_at.isoformat()}
            )
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
        entry = DrawEntry(
            draw_id=draw.id,
            account_id=account_id,
            national_id=person.national_id,
            service_group=draw.service_group,
            entry_token=secrets.token_hex(16),
            part_of_day=part_of_day,
            status="entered",
            created_at=now,
        )
        db.session.add(entry)
        db.session.commit()
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
