"""Waitlists: a seat that comes free goes to whoever waits for it, never back to open sale first.

This is the citizen's side: joining, the place in line, leaving. The hand-over itself runs where seats are
freed (`booking.seats.offer_freed_seats`), for these places and for the entrants a draw waitlisted.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.catalogue.models import Centre, Offering
from app.errors import ValidationFailed
from app.extensions import db
from booking import errors
from booking.abuse import check_eligibility, check_suspensions, get_citizen
from booking.draws import check_group_quota
from booking.horizon import horizon_days
from booking.models import Booking
from booking.release_models import Draw, DrawEntry, WaitlistEntry
from notifications.services import notify_citizens


def _cfg(name: str) -> Any:
    return current_app.config[name]


# --------------------------------------------------------------------------------- citizen's side


def join_waitlist(
    *,
    account_id: int,
    service_code: str,
    centre_id: str,
    date_from: dt.date,
    date_to: dt.date,
    part_of_day: str = "any",
) -> tuple[WaitlistEntry, int]:
    """Wait for a seat of a first-come offering between two local dates; returns (entry, position)."""
    offering = db.session.scalar(
        select(Offering).where(
            Offering.centre_id == centre_id, Offering.service_code == service_code, Offering.active.is_(True)
        )
    )
    if offering is None:
        raise ValidationFailed(details={"fields": {"service": ["This centre does not offer this service."]}})
    if offering.allocation != "first_come":
        raise errors.DrawAllocation(details={"service": service_code, "centre_id": centre_id})
    account = get_citizen(account_id)
    tz = offering.centre.timezone
    now = clock.now()
    today = now.astimezone(zoneinfo.ZoneInfo(tz)).date()
    if date_to < date_from:
        raise ValidationFailed(details={"fields": {"to": ["Must not be before `from`."]}})
    if date_from < today:
        raise ValidationFailed(details={"fields": {"from": ["Must not be in the past."]}})
    latest = today + dt.timedelta(days=horizon_days(expatriate=account.is_expatriate, offering=offering))
    if date_to > latest:
        raise ValidationFailed(
            details={"fields": {"to": [f"Outside the booking horizon (at most {latest.isoformat()})."]}}
        )
    service = offering.service
    group = service.group
    try:
        check_suspensions(account, service, now, tz)
        check_eligibility(account=account, service=service, today=date_from)
        check_group_quota(account.national_id, group)
        entry = WaitlistEntry(
            account_id=account_id,
            offering_id=offering.id,
            centre_id=offering.centre_id,
            service_code=service.code,
            service_group=group,
            date_from=date_from,
            date_to=date_to,
            part_of_day=part_of_day,
            status="waiting",
            created_at=now,
        )
        db.session.add(entry)
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise errors.AlreadyWaitlisted(details={"service_group": group}) from exc
    except Exception:
        db.session.rollback()
        raise
    return entry, waitlist_position(entry)


def waitlist_position(entry: WaitlistEntry) -> int | None:
    """1 + the citizens waiting ahead for the same offering (None once no longer waiting)."""
    if entry.status != "waiting":
        return None
    ahead = db.session.scalar(
        select(func.count()).where(
            WaitlistEntry.offering_id == entry.offering_id,
            WaitlistEntry.status == "waiting",
            WaitlistEntry.id < entry.id,
        )
    )
    return int(ahead) + 1


def list_waitlist(*, account_id: int):
    """The citizen's waitlist places, newest first (a query to paginate)."""
    return (
        select(WaitlistEntry)
        .where(WaitlistEntry.account_id == account_id)
        .order_by(WaitlistEntry.created_at.desc(), WaitlistEntry.id.desc())
    )


def offered_booking(waitlist_id: int) -> Booking | None:
    """The booking offered from a waitlist place, if any."""
    return db.session.scalar(select(Booking).where(Booking.waitlist_entry_id == waitlist_id))


def get_waitlist_entry(*, account_id: int, waitlist_id: int) -> WaitlistEntry:
    """One of the citizen's own waitlist places (another's answers 404)."""
    entry = db.session.scalar(
        select(WaitlistEntry).where(WaitlistEntry.id == waitlist_id, WaitlistEntry.account_id == account_id)
    )
    if entry is None:
        raise errors.WaitlistNotFound()
    return entry


def leave_waitlist(*, account_id: int, waitlist_id: int) -> WaitlistEntry:
    """Leave a waitlist (an offer already made stays the citizen's booking to confirm or cancel)."""
    entry = get_waitlist_entry(account_id=account_id, waitlist_id=waitlist_id)
    if entry.status == "waiting":
        db.session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.id == entry.id, WaitlistEntry.status == "waiting")
            .values(status="left", left_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        db.session.expire_all()
    return db.session.get(WaitlistEntry, waitlist_id)


def end_past_waits(*, now: dt.datetime | None = None) -> int:
    """End the waits whose days are over: draw entrants still waitlisted are `lost` (and told), waitlist
    places are `closed` (`days_passed`), and the draw's days leave the waitlist. Commits; returns how many.
    """
    now = now or clock.now()
    ended = 0
    timezones = db.session.scalars(select(Centre.timezone).distinct()).all()
    for timezone in timezones:
        today = now.astimezone(zoneinfo.ZoneInfo(timezone)).date()
        in_zone = select(Centre.id).where(Centre.timezone == timezone)
        draws = db.session.scalars(
            select(Draw).where(
                Draw.waitlist_open.is_(True), Draw.days_to < today, Draw.centre_id.in_(in_zone)
            )
        ).all()
        for draw in draws:
            lost = db.session.execute(
                update(DrawEntry)
                .where(DrawEntry.draw_id == draw.id, DrawEntry.status == "waitlisted")
                .values(status="lost", excluded_reason="days_passed")
                .returning(DrawEntry.id, DrawEntry.account_id)
                .execution_options(synchronize_session=False)
            ).all()
            params = {"centre_id": draw.centre_id, "service_code": draw.service_code, "draw_id": draw.id}
            notify_citizens(kind="draw_lost", items=[(a, params, f"draw_lost:{i}") for i, a in lost])
            draw.waitlist_open = False
            ended += len(lost)
        closed = db.session.execute(
            update(WaitlistEntry)
            .where(
                WaitlistEntry.status == "waiting",
                WaitlistEntry.date_to < today,
                WaitlistEntry.offering_id.in_(select(Offering.id).where(Offering.centre_id.in_(in_zone))),
            )
            .values(status="closed", closed_reason="days_passed")
            .execution_options(synchronize_session=False)
        )
        ended += closed.rowcount or 0
    db.session.commit()
    return ended
