"""Draws: a verifiable lottery over an offering's seats on some days, instead of a first-come race.

Release day as a whole: an admin creates a draw (this module), citizens enter it (`booking.draw_entries`),
the draw is run at the close (`booking.draw_run`) by the lottery in `booking.lottery`, and the seats
that come free later go to those it waitlisted (`booking.seats.offer_freed_seats`). While a draw is
undrawn, or drawn with people still waiting, its days are kept off first-come sale (`keeps_off_sale`),
and an entry counts as a booking of its service group (`check_group_quota`).

`/draws/{id}/result` publishes the seed, the order, the seats as they were at the close, the entries
left out at the draw (and why) and the allocations, so anyone can recompute them (`draw_result`).
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
import zoneinfo
from collections.abc import Sequence
from typing import Any

from flask import current_app
from sqlalchemy import and_, bindparam, func, or_, select, update

from app import clock
from app.accounts.models import Account
from app.audit import record_audit
from app.catalogue.models import Offering, Service
from app.dialect import advisory_xact_lock
from app.errors import ValidationFailed
from app.extensions import db
from booking import errors
from booking.horizon import horizon_days
from booking.lottery import commitment
from booking.models import Booking, BookingApplicant, Slot
from booking.release_models import UNDRAWN_STATUSES, Draw, DrawEntry

OFFERING_DRAWS_LOCK_NAMESPACE = 7313


def _cfg(name: str) -> Any:
    return current_app.config[name]


# ---------------------------------------------------------------------------------------- lookups


def get_draw(*, draw_id: int) -> Draw:
    """One draw as the database has it now (any signed-in user may read it)."""
    draw = db.session.get(Draw, draw_id, populate_existing=True)
    if draw is None:
        raise errors.DrawNotFound()
    return draw


def list_draws(*, centre_id: str | None = None, service: str | None = None, status: str | None = None):
    """Draws, soonest closing first, filtered, as a query to paginate."""
    query = select(Draw).order_by(Draw.entries_close_at, Draw.id)
    if centre_id:
        query = query.where(Draw.centre_id == centre_id)
    if service:
        query = query.where(Draw.service_code == service)
    if status:
        query = query.where(Draw.status == status)
    return query


def entry_counts(draw_ids: Sequence[int]) -> dict[int, int]:
    """Entries still in each draw (withdrawn and cancelled ones not counted)."""
    if not draw_ids:
        return {}
    rows = db.session.execute(
        select(DrawEntry.draw_id, func.count())
        .where(DrawEntry.draw_id.in_(draw_ids), DrawEntry.status.not_in(("withdrawn", "cancelled")))
        .group_by(DrawEntry.draw_id)
    ).all()
    return {draw_id: count for draw_id, count in rows}


def seat_counts(draws: Sequence[Draw]) -> dict[int, int]:
    """Seats each draw gives: free seats of its days now, or as they were at the close once closed."""
    out: dict[int, int] = {}
    for draw in draws:
        if draw.seats_snapshot is not None:
            out[draw.id] = sum(int(s["seats"]) for s in draw.seats_snapshot)
        else:
            out[draw.id] = int(
                db.session.scalar(
                    select(func.coalesce(func.sum(Slot.capacity - Slot.booked), 0)).where(*draw_slots(draw))
                )
            )
    return out


def draw_slots(draw: Draw) -> list[Any]:
    return [
        Slot.offering_id == draw.offering_id,
        Slot.local_date >= draw.days_from,
        Slot.local_date <= draw.days_to,
        Slot.open.is_(True),
        Slot.start > clock.now(),
    ]


# --------------------------------------------------------------------------------- admin: create


def _field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(details={"fields": {field: [message]}})


def _lock_offering_draws(offering_id: int) -> None:
    """Serialise draw creation per offering, so two overlapping draws cannot both pass the check."""
    advisory_xact_lock(str(offering_id), OFFERING_DRAWS_LOCK_NAMESPACE)


def create_draw(
    *,
    admin_id: int,
    centre_id: str,
    service_code: str,
    days_from: dt.date,
    days_to: dt.date,
    entries_open_at: dt.datetime,
    entries_close_at: dt.datetime,
    confirm_hours: int | None = None,
) -> Draw:
    """A new open draw with a fresh secret seed and its published commitment; audited (commits)."""
    offering = _drawable_offering(centre_id, service_code)
    now = clock.now()
    _check_draw_dates(
        offering,
        now=now,
        days_from=days_from,
        days_to=days_to,
        entries_open_at=entries_open_at,
        entries_close_at=entries_close_at,
    )
    try:
        _lock_offering_draws(offering.id)
        _refuse_overlap(offering.id, days_from, days_to)
        seed = secrets.token_hex(32)
        draw = Draw(
            offering_id=offering.id,
            centre_id=offering.centre_id,
            service_code=offering.service_code,
            service_group=offering.service.group,
            days_from=days_from,
            days_to=days_to,
            entries_open_at=entries_open_at,
            entries_close_at=entries_close_at,
            confirm_hours=confirm_hours or _cfg("DRAW_CONFIRM_HOURS"),
            status="open",
            seed=seed,
            seed_commitment=commitment(seed),
            created_by=admin_id,
            created_at=now,
        )
        db.session.add(draw)
        db.session.flush()
        audit_draw(draw, "draw.create", actor_id=admin_id, actor_role="admin", details=_public_fields(draw))
        db.session.commit()
        forget_active_draws()
    except Exception:
        db.session.rollback()
        raise
    return draw


def _drawable_offering(centre_id: str, service_code: str) -> Offering:
    offering = db.session.scalar(
        select(Offering).where(Offering.centre_id == centre_id, Offering.service_code == service_code)
    )
    if offering is None:
        raise _field_error("service", "This centre does not offer this service.")
    if offering.allocation != "draw":
        raise _field_error("service", "The offering's allocation is first_come: set it to draw first.")
    return offering


def _check_draw_dates(
    offering: Offering,
    *,
    now: dt.datetime,
    days_from: dt.date,
    days_to: dt.date,
    entries_open_at: dt.datetime,
    entries_close_at: dt.datetime,
) -> None:
    """The entries close in the future, and the draw's days lie after the close and within the horizon."""
    tz = zoneinfo.ZoneInfo(offering.centre.timezone)
    today = now.astimezone(tz).date()
    if days_to < days_from:
        raise _field_error("days_to", "Must not be before days_from.")
    if entries_close_at <= entries_open_at:
        raise _field_error("entries_close_at", "Must be after entries_open_at.")
    if entries_close_at <= now:
        raise _field_error("entries_close_at", "Must be in the future.")
    first_day = max(
        today + dt.timedelta(days=1), entries_close_at.astimezone(tz).date() + dt.timedelta(days=1)
    )
    if days_from < first_day:
        raise _field_error(
            "days_from", f"Must be on or after {first_day.isoformat()} (after the entries close)."
        )
    last_day = today + dt.timedelta(days=horizon_days(expatriate=False, offering=offering))
    if days_to > last_day:
        raise _field_error("days_to", f"Outside the booking horizon (at most {last_day.isoformat()}).")


def _refuse_overlap(offering_id: int, days_from: dt.date, days_to: dt.date) -> None:
    """Two draws of one offering never share a day (checked under `_lock_offering_draws`)."""
    overlapping = db.session.scalar(
        select(Draw.id).where(
            Draw.offering_id == offering_id,
            Draw.status != "cancelled",
            Draw.days_from <= days_to,
            Draw.days_to >= days_from,
        )
    )
    if overlapping is not None:
        raise ValidationFailed(
            details={
                "fields": {"days_from": ["Overlaps another draw of this offering."]},
                "draw_id": overlapping,
            }
        )


def _public_fields(draw: Draw) -> dict[str, Any]:
    return {
        "service": draw.service_code,
        "days_from": draw.days_from.isoformat(),
        "days_to": draw.days_to.isoformat(),
        "entries_open_at": draw.entries_open_at.isoformat(),
        "entries_close_at": draw.entries_close_at.isoformat(),
        "confirm_hours": draw.confirm_hours,
        "seed_commitment": draw.seed_commitment,
    }


def audit_draw(draw: Draw, action: str, *, actor_id: int | None, actor_role: str, **kwargs: Any) -> None:
    record_audit(
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        subject_type="draw",
        subject_id=draw.id,
        centre_id=draw.centre_id,
        **kwargs,
    )


def cancel_draw(*, admin_id: int, draw_id: int, reason: str | None = None) -> Draw:
    """Cancel an open draw: its days go back to first-come sale and its entries are cancelled (commits)."""
    draw = get_draw(draw_id=draw_id)
    if draw.status == "cancelled":
        return draw
    changed = db.session.execute(
        update(Draw)
        .where(Draw.id == draw_id, Draw.status == "open")
        .values(status="cancelled", cancelled_at=clock.now())
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        db.session.rollback()
        raise errors.InvalidDrawState(details={"status": get_draw(draw_id=draw_id).status})
    db.session.execute(
        update(DrawEntry)
        .where(DrawEntry.draw_id == draw_id, DrawEntry.status == "entered")
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )
    audit_draw(draw, "draw.cancel", actor_id=admin_id, actor_role="admin", reason=reason)
    db.session.commit()
    forget_active_draws()
    db.session.expire_all()
    return get_draw(draw_id=draw_id)


# ------------------------------------------------------------------- an entry counts in its group


def _people(column: Any, national_id: Any) -> Any:
    return column.in_(national_id) if isinstance(national_id, list | tuple) else column == national_id


def live_entry_in_group(national_id: Any, group: str, *, other_than: int | None = None):
    """A live entry of an undrawn draw of the group for this person (or these), whoever entered them."""
    query = (
        select(DrawEntry.draw_id)
        .join(Draw, Draw.id == DrawEntry.draw_id)
        .where(
            _people(DrawEntry.national_id, national_id),
            DrawEntry.service_group == group,
            DrawEntry.status == "entered",
            Draw.status.in_(UNDRAWN_STATUSES),
        )
    )
    if other_than is not None:
        query = query.where(DrawEntry.draw_id != other_than)
    return query.limit(1)


def active_booking_in_group(national_id: Any, group: Any, *, now: Any = None):
    """An active booking of the group naming this person (or these) as an applicant, whoever booked it.

    `now` may be a bound parameter (a statement built once); default the clock's now."""
    now = clock.now() if now is None else now
    return (
        select(Booking.reference)
        .join(BookingApplicant, BookingApplicant.booking_id == Booking.id)
        .where(
            _people(BookingApplicant.national_id, national_id),
            BookingApplicant.service_group == group,
            BookingApplicant.active.is_(True),
            or_(Booking.status == "confirmed", and_(Booking.status == "held", Booking.hold_expires_at > now)),
        )
        .limit(1)
    )


def check_group_quota(national_id: str, group: str, *, other_than_draw: int | None = None) -> None:
    """A person's active booking or live draw entry of the group refuses another (one round trip)."""
    reference, draw_id = db.session.execute(
        select(
            active_booking_in_group(national_id, group).scalar_subquery(),
            live_entry_in_group(national_id, group, other_than=other_than_draw).scalar_subquery(),
        )
    ).one()
    if reference is not None:
        raise errors.ActiveBookingExists(
            details={"reason": "per_group", "service_group": group, "reference": reference}
        )
    if draw_id is not None:
        raise errors.ActiveBookingExists(
            details={"reason": "draw_entry", "service_group": group, "draw_id": draw_id}
        )


# ----------------------------------------------------------------------------- first-come guard


def keeps_off_sale(offering_id: Any, local_date: Any):
    """SQL: a draw keeps this offering's day off first-come sale (undrawn, or drawn while people wait)."""
    return (
        select(Draw.id)
        .where(
            Draw.offering_id == offering_id,
            Draw.days_from <= local_date,
            Draw.days_to >= local_date,
            or_(
                Draw.status.in_(UNDRAWN_STATUSES), and_(Draw.status == "drawn", Draw.waitlist_open.is_(True))
            ),
        )
        .limit(1)
    )


def undrawn_draw_for(*, offering_id: int, local_date: dt.date) -> int | None:
    """The draw keeping this day of the offering off first-come sale, if any."""
    return db.session.scalar(keeps_off_sale(offering_id, local_date))


_ACTIVE_SECONDS = 1.0


_active: dict[str, Any] = {
    "at": -_ACTIVE_SECONDS,
    "loaded": False,
    "offerings": frozenset(),
    "groups": frozenset(),
}


_ACTIVE_DRAWS = select(Draw.offering_id, Draw.service_group, Draw.status).where(
    or_(Draw.status.in_(UNDRAWN_STATUSES), and_(Draw.status == "drawn", Draw.waitlist_open.is_(True)))
)


def _active_draws() -> tuple[frozenset[int], frozenset[str]]:
    """Offerings and service groups with a draw that keeps days off sale, remembered 1 s per process.

    So a hold pays nothing for draws when none is running (the common case), and one query when one is.
    One request refreshes the memo when it runs out; the others (greenlets waiting on the same query)
    keep the last answer meanwhile instead of all asking at once. Until a first answer, everyone asks.
    """
    now, before = time.monotonic(), _active["at"]
    if not _active["loaded"] or now - before >= current_app.config.get(
        "ACTIVE_DRAWS_SECONDS", _ACTIVE_SECONDS
    ):
        _active["at"] = now  # claimed: the others keep the last answer until this one is in
        try:
            rows = db.session.execute(_ACTIVE_DRAWS).all()
        except BaseException:
            _active["at"] = before  # the next request asks again
            raise
        _active.update(
            # Forgotten meanwhile (a draw created here while this read ran): the next hold reads again.
            at=now if _active["at"] == now else _active["at"],
            loaded=True,
            offerings=frozenset(r.offering_id for r in rows),
            groups=frozenset(r.service_group for r in rows if r.status in UNDRAWN_STATUSES),
        )
    return _active["offerings"], _active["groups"]


def forget_active_draws() -> None:
    """Read the draws again at the next hold (after creating, running or cancelling one here)."""
    _active["at"] = -_ACTIVE_SECONDS


def own_national_id(account_id: int) -> Any:
    """SQL: the citizen's own national id."""
    return select(Account.national_id).where(Account.id == account_id).scalar_subquery()


_SLOT_FACTS = (
    select(Slot.offering_id, Slot.local_date, Service.group)
    .join(Offering, Offering.id == Slot.offering_id)
    .join(Service, Service.code == Offering.service_code)
    .where(Slot.id == bindparam("slot"))
)
SLOT_FACTS_SECONDS = 60.0
SLOT_FACTS_MAX = 20_000


def _slot_facts(slot_id: int) -> Any:
    """A slot's offering, local day and service group, remembered a minute per app and process: a slot
    never changes offering or day, and a service's group hardly ever (a minute late at most)."""
    memo = current_app.extensions.setdefault("booking.slot_facts", {})
    now = time.monotonic()
    hit = memo.get(slot_id)
    if hit is not None and now - hit[0] < SLOT_FACTS_SECONDS:
        return hit[1]
    row = db.session.execute(_SLOT_FACTS, {"slot": slot_id}).first()
    if row is not None:
        if len(memo) >= SLOT_FACTS_MAX:
            memo.clear()
        memo[slot_id] = (now, row)
    return row


def draws_running() -> bool:
    """Whether any draw keeps days off sale or takes entries (remembered: no query when none runs). A read
    that carries `first_come_columns` needs nothing more: they answer NULL for a slot no draw concerns."""
    offerings, _groups = _active_draws()
    return bool(offerings)


def first_come_check_needed(slot_id: int) -> bool:
    """Whether a first-come hold of this slot must ask about draws: one keeps its offering's days off sale
    or takes entries in its group (remembered: no query when no draw runs, the common case)."""
    offerings, groups = _active_draws()
    if not offerings:
        return False
    row = _slot_facts(slot_id)
    return row is not None and (row.offering_id in offerings or row.group in groups)


def first_come_columns(offering_id: Any, local_date: Any, group: Any, account_id: Any) -> tuple[Any, Any]:
    """SQL columns `draw_id` (a draw keeping the day off sale) and `entry_draw` (the citizen's live entry
    in the group), to read with the slot; values, columns or bound parameters."""
    return (
        keeps_off_sale(offering_id, local_date).scalar_subquery().label("draw_id"),
        live_entry_in_group(own_national_id(account_id), group).scalar_subquery().label("entry_draw"),
    )


def refuse_first_come(draw_id: int | None, entry_draw: int | None, group: str) -> None:
    """409 in_draw on a day a draw gives; 409 active_booking_exists while the citizen's entry counts."""
    if draw_id is not None:
        raise errors.InDraw(details={"draw_id": draw_id})
    if entry_draw is not None:
        raise errors.ActiveBookingExists(
            details={"reason": "draw_entry", "service_group": group, "draw_id": entry_draw}
        )


def check_first_come(*, slot_id: int, account_id: int) -> None:
    """Refuse a first-come hold on a day a draw gives (409 in_draw), or while the citizen's entry counts."""
    if not first_come_check_needed(slot_id):
        return
    row = _slot_facts(slot_id)
    draw_id, entry_draw = db.session.execute(
        select(*first_come_columns(row.offering_id, row.local_date, row.group, account_id))
    ).one()
    refuse_first_come(draw_id, entry_draw, row.group)


# ------------------------------------------------------------------------------------- the result


def draw_result(*, draw_id: int) -> dict[str, Any]:
    """The public result: seed, commitment, order, seats at the close, exclusions and allocations."""
    draw = get_draw(draw_id=draw_id)
    if draw.status != "drawn":
        raise errors.DrawNotDrawn(details={"status": draw.status})
    entries = db.session.execute(
        select(
            DrawEntry.id,
            DrawEntry.entry_token,
            DrawEntry.part_of_day,
            DrawEntry.excluded_reason,
            DrawEntry.rank,
        )
        .where(DrawEntry.draw_id == draw_id, DrawEntry.rank.is_not(None))
        .order_by(DrawEntry.rank)
    ).all()
    allocated = dict(
        db.session.execute(
            select(DrawEntry.id, Booking.slot_id)
            .join(Booking, Booking.draw_entry_id == DrawEntry.id)
            .where(DrawEntry.draw_id == draw_id, DrawEntry.planned_slot_id.is_not(None))
        ).all()
    )
    return {
        "draw_id": draw.id,
        "seed": draw.seed,
        "seed_commitment": draw.seed_commitment,
        "method": (
            "seed_commitment = hex(SHA-256(bytes.fromhex(seed))); entries ordered by "
            "hex(HMAC-SHA256(key=bytes.fromhex(seed), msg=entry_token)) ascending; in that order each entry "
            "not in `excluded` takes the earliest seat left in `seats` whose part_of_day matches its own "
            "('any' matches every seat), until no seat is left"
        ),
        "order": [e.entry_token for e in entries],
        "entries": [{"entry_token": e.entry_token, "part_of_day": e.part_of_day} for e in entries],
        "seats": draw.seats_snapshot or [],
        "excluded": [
            {"entry_token": e.entry_token, "reason": e.excluded_reason} for e in entries if e.excluded_reason
        ],
        "allocations": [
            {"entry_token": e.entry_token, "slot_id": allocated[e.id]} for e in entries if e.id in allocated
        ],
    }
