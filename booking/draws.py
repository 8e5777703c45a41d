"""Draws (SPEC §9): a verifiable lottery over an offering's seats on some days, instead of a first-come race.

The seed is 32 random bytes from `secrets`; its SHA-256 (`seed_commitment`) is public from creation and the
seed itself once drawn. Entrants are ordered by HMAC-SHA256(key = seed bytes, message = entry_token),
ascending hex; in that order each takes the earliest free seat of the draw's days matching its
`part_of_day`. `/draws/{id}/result` publishes the seed, the order, the seats as they were at the close,
the entries left out at the draw (and why) and the allocations, so anyone can recompute them.

Running a draw is idempotent and resumable. Under a lock per draw (PostgreSQL advisory lock, held on its
own connection): (1) the entries close (`open` → `drawing`; entrants hold the draw row FOR SHARE, so no
entry commits after it); (2) the plan (rank, planned seat, exclusion) is computed and stored with the seat
snapshot in one transaction; (3) winners get their held bookings in batches, each booking carrying its
entry id under a unique index, in the transaction that takes its seat and marks the entry `won`; (4) the
rest are waitlisted and the draw is `drawn`. A run that dies anywhere resumes from the step it reached.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.audit import record_audit
from app.catalogue.models import Centre, Offering, Service
from app.database import is_postgres
from app.errors import AppError, ValidationFailed
from app.extensions import db
from booking import errors
from booking.models import Booking, Slot
from booking.release_models import (
    AFTERNOON_FROM_HOUR,
    UNDRAWN_STATUSES,
    Draw,
    DrawEntry,
)

WINNER_BATCH = 250


def _cfg(name: str) -> Any:
    return current_app.config[name]


def _postgres() -> bool:
    return is_postgres(db.session.get_bind())


# ------------------------------------------------------------------------------------ the lottery


def commitment(seed_hex: str) -> str:
    """The published commitment to a seed: hex SHA-256 of the seed's bytes."""
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def entry_key(seed_hex: str, entry_token: str) -> str:
    """An entry's place in the draw: hex HMAC-SHA256(key = seed bytes, message = entry_token)."""
    return hmac.new(bytes.fromhex(seed_hex), entry_token.encode(), hashlib.sha256).hexdigest()


def draw_order(seed_hex: str, tokens: Iterable[str]) -> list[str]:
    """Entry tokens in draw order (ascending HMAC hex)."""
    return sorted(tokens, key=lambda token: entry_key(seed_hex, token))


def part_of_day(start: dt.datetime, timezone: str) -> str:
    """`morning` before 12:00 centre-local, else `afternoon`."""
    return (
        "morning" if start.astimezone(zoneinfo.ZoneInfo(timezone)).hour < AFTERNOON_FROM_HOUR else "afternoon"
    )


class _SeatPool:
    """Free seats by slot in (start, slot id) order; takes the earliest one matching a part of the day."""

    def __init__(self, slots: Sequence[dict[str, Any]]) -> None:
        self.slots = list(slots)
        self.left = [int(s["seats"]) for s in self.slots]
        self.cursor = {"any": 0, "morning": 0, "afternoon": 0}

    def take(self, part: str) -> int | None:
        index = self.cursor[part]
        while index < len(self.slots) and (
            self.left[index] == 0 or (part != "any" and self.slots[index]["part_of_day"] != part)
        ):
            index += 1
        self.cursor[part] = index
        if index == len(self.slots):
            return None
        self.left[index] -= 1
        return int(self.slots[index]["slot_id"])

    def empty(self) -> bool:
        return not any(self.left)


def allocate(
    *, seed_hex: str, entries: Sequence[dict[str, str]], seats: Sequence[dict[str, Any]], excluded: set[str]
) -> list[tuple[str, int]]:
    """The allocations [(entry_token, slot_id)]: entries in draw order, each taking the earliest seat it fits.

    `entries` are {entry_token, part_of_day}; `seats` are the published snapshot; `excluded` tokens are
    skipped. This is exactly the recomputation a reader of the published result does.
    """
    parts = {e["entry_token"]: e["part_of_day"] for e in entries}
    pool = _SeatPool(list(seats))
    out: list[tuple[str, int]] = []
    for token in draw_order(seed_hex, parts):
        if pool.empty():
            break
        if token in excluded:
            continue
        slot_id = pool.take(parts[token])
        if slot_id is not None:
            out.append((token, slot_id))
    return out


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
                    select(func.coalesce(func.sum(Slot.capacity - Slot.booked), 0)).where(*_draw_slots(draw))
                )
            )
    return out


def _draw_slots(draw: Draw) -> list[Any]:
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
    if _postgres():
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7313))"), {"k": str(offering_id)}
        )


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
    from booking.services import horizon_days

    offering = db.session.scalar(
        select(Offering).where(Offering.centre_id == centre_id, Offering.service_code == service_code)
    )
    if offering is None:
        raise _field_error("service", "This centre does not offer this service.")
    if offering.allocation != "draw":
        raise _field_error("service", "The offering's allocation is first_come: set it to draw first.")
    tz = zoneinfo.ZoneInfo(offering.centre.timezone)
    now = clock.now()
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
    try:
        _lock_offering_draws(offering.id)
        overlapping = db.session.scalar(
            select(Draw.id).where(
                Draw.offering_id == offering.id,
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
        _audit(draw, "draw.create", actor_id=admin_id, actor_role="admin", details=_public_fields(draw))
        db.session.commit()
        forget_active_draws()
    except Exception:
        db.session.rollback()
        raise
    return draw


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


def _audit(draw: Draw, action: str, *, actor_id: int | None, actor_role: str, **kwargs: Any) -> None:
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
    _audit(draw, "draw.cancel", actor_id=admin_id, actor_role="admin", reason=reason)
    db.session.commit()
    forget_active_draws()
    db.session.expire_all()
    return get_draw(draw_id=draw_id)


# ---------------------------------------------------------------------------------------- entries


def _entries_gate(draw_id: int, *, closing: bool = False) -> None:
    """Entrants hold a draw's gate shared for their transaction, the close takes it exclusively.

    So no entry commits after the close has read the entries. A transaction-scoped advisory lock, not
    `FOR SHARE` on the draw row: thousands of concurrent shared row locks would each rewrite the row's
    multixact; advisory locks live in the lock manager only. SQLite serialises writers anyway.
    """
    if _postgres():
        function = "pg_advisory_xact_lock" if closing else "pg_advisory_xact_lock_shared"
        db.session.execute(text(f"SELECT {function}(7321, :d)"), {"d": draw_id})


def _accounts(column: Any, account_id: int | Sequence[int]) -> Any:
    return column.in_(account_id) if isinstance(account_id, list | tuple) else column == account_id


def _live_entry_in_group(account_id: int | Sequence[int], group: str, *, other_than: int | None = None):
    query = (
        select(DrawEntry.draw_id)
        .join(Draw, Draw.id == DrawEntry.draw_id)
        .where(
            _accounts(DrawEntry.account_id, account_id),
            DrawEntry.service_group == group,
            DrawEntry.status == "entered",
            Draw.status.in_(UNDRAWN_STATUSES),
        )
    )
    if other_than is not None:
        query = query.where(DrawEntry.draw_id != other_than)
    return query.limit(1)


def _active_booking_in_group(account_id: int | Sequence[int], group: str):
    now = clock.now()
    return (
        select(Booking.reference)
        .where(
            _accounts(Booking.account_id, account_id),
            Booking.service_group == group,
            Booking.kind == "regular",
            or_(Booking.status == "confirmed", and_(Booking.status == "held", Booking.hold_expires_at > now)),
        )
        .limit(1)
    )


def check_group_quota(account_id: int, group: str, *, other_than_draw: int | None = None) -> None:
    """An active booking or a live draw entry of the group refuses another (one round trip)."""
    reference, draw_id = db.session.execute(
        select(
            _active_booking_in_group(account_id, group).scalar_subquery(),
            _live_entry_in_group(account_id, group, other_than=other_than_draw).scalar_subquery(),
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


def _check_entrant(
    account: Account, service: Service, *, group: str, today: dt.date, tz: str, draw_id: int
) -> None:
    """Suspensions, eligibility and the group quota (an entry counts as a booking of its group)."""
    from booking.services import _check_suspensions, check_eligibility

    _check_suspensions(account, service, clock.now(), tz)
    check_eligibility(account=account, service=service, today=today)
    check_group_quota(account.id, group, other_than_draw=draw_id)


def enter_draw(*, account_id: int, draw_id: int, part_of_day: str = "any") -> DrawEntry:
    """Enter a draw: one row, no slot touched (201 entered); refusals write nothing (commits).

    A second entry of the same person is refused by the unique (draw, national id) constraint itself.
    """
    from booking.services import _get_account

    try:
        _entries_gate(draw_id)
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
        account = _get_account(account_id)
        _check_entrant(
            account, service, group=draw.service_group, today=draw.days_from, tz=timezone, draw_id=draw.id
        )
        entry = DrawEntry(
            draw_id=draw.id,
            account_id=account_id,
            national_id=account.national_id,
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
    except Exception:
        db.session.rollback()
        raise
    return entry


def withdraw_entry(*, account_id: int, draw_id: int) -> DrawEntry:
    """Withdraw the citizen's entry before the close (final: the same person cannot enter again)."""
    draw = get_draw(draw_id=draw_id)
    entry = db.session.scalar(
        select(DrawEntry).where(DrawEntry.draw_id == draw_id, DrawEntry.account_id == account_id)
    )
    if entry is None:
        raise errors.EntryNotFound()
    if entry.status == "withdrawn":
        return entry
    now = clock.now()
    if draw.status != "open" or now >= draw.entries_close_at:
        raise errors.DrawClosed(details={"draw_id": draw.id})
    _entries_gate(draw_id)
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
_active: dict[str, Any] = {"at": -_ACTIVE_SECONDS, "offerings": frozenset(), "groups": frozenset()}


def _active_draws() -> tuple[frozenset[int], frozenset[str]]:
    """Offerings and service groups with a draw that keeps days off sale, remembered 1 s per process.

    So a hold pays nothing for draws when none is running (the common case), and one query when one is.
    """
    import time

    if time.monotonic() - _active["at"] >= _ACTIVE_SECONDS:
        rows = db.session.execute(
            select(Draw.offering_id, Draw.service_group, Draw.status).where(
                or_(
                    Draw.status.in_(UNDRAWN_STATUSES),
                    and_(Draw.status == "drawn", Draw.waitlist_open.is_(True)),
                )
            )
        ).all()
        _active.update(
            at=time.monotonic(),
            offerings=frozenset(r.offering_id for r in rows),
            groups=frozenset(r.service_group for r in rows if r.status in UNDRAWN_STATUSES),
        )
    return _active["offerings"], _active["groups"]


def forget_active_draws() -> None:
    """Read the draws again at the next hold (after creating, running or cancelling one here)."""
    _active["at"] = -_ACTIVE_SECONDS


def check_first_come(*, slot_id: int, account_id: int) -> None:
    """Refuse a first-come hold on a day a draw gives (409 in_draw), or while the citizen's entry counts."""
    offerings, groups = _active_draws()
    if not offerings:
        return
    row = db.session.execute(
        select(Slot.offering_id, Slot.local_date, Service.group)
        .join(Offering, Offering.id == Slot.offering_id)
        .join(Service, Service.code == Offering.service_code)
        .where(Slot.id == slot_id)
    ).first()
    if row is None:
        return  # the hold answers slot_not_found
    draw_id = entry_draw = None
    if row.offering_id in offerings or row.group in groups:
        draw_id, entry_draw = db.session.execute(
            select(
                keeps_off_sale(row.offering_id, row.local_date).scalar_subquery(),
                _live_entry_in_group(account_id, row.group).scalar_subquery(),
            )
        ).one()
    if draw_id is not None:
        raise errors.InDraw(details={"draw_id": draw_id})
    if entry_draw is not None:
        raise errors.ActiveBookingExists(
            details={"reason": "draw_entry", "service_group": row.group, "draw_id": entry_draw}
        )


# ------------------------------------------------------------------------------------ the draw


def run_due_draws() -> int:
    """Draw every draw whose entries have closed (the scheduler job); returns how many were drawn."""
    due = db.session.scalars(
        select(Draw.id)
        .where(Draw.status.in_(UNDRAWN_STATUSES), Draw.entries_close_at <= clock.now())
        .order_by(Draw.entries_close_at)
    ).all()
    db.session.rollback()
    drawn = 0
    for draw_id in due:
        try:
            run_draw(draw_id=draw_id)
            drawn += 1
        except errors.DrawInProgress:
            continue
    return drawn


def run_draw(*, draw_id: int, actor_id: int | None = None, actor_role: str = "system") -> Draw:
    """Close the entries and draw now (idempotent: a drawn draw is answered as it is; resumable)."""
    from app.jobs import job_lock

    draw = get_draw(draw_id=draw_id)
    if draw.status == "drawn":
        return draw
    if draw.status == "cancelled":
        raise errors.InvalidDrawState(details={"status": draw.status})
    db.session.rollback()
    with job_lock(f"draw:{draw_id}") as acquired:
        if not acquired:
            raise errors.DrawInProgress(details={"draw_id": draw_id})
        _close_entries(draw_id, actor_id=actor_id, actor_role=actor_role)
        _plan(draw_id)
        while _seat_winners(draw_id):
            pass
        _finish(draw_id)
    forget_active_draws()
    db.session.expire_all()
    return get_draw(draw_id=draw_id)


def _close_entries(draw_id: int, *, actor_id: int | None, actor_role: str) -> None:
    draw = get_draw(draw_id=draw_id)
    if draw.status == "open":
        _entries_gate(draw_id, closing=True)
        changed = db.session.execute(
            update(Draw)
            .where(Draw.id == draw_id, Draw.status == "open")
            .values(status="drawing", closed_at=clock.now())
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed == 1:
            _audit(draw, "draw.run", actor_id=actor_id, actor_role=actor_role)
        db.session.commit()
    else:
        db.session.rollback()
    draw = get_draw(draw_id=draw_id)
    if draw.status == "cancelled":
        raise errors.InvalidDrawState(details={"status": draw.status})


def _seat_snapshot(draw: Draw) -> list[dict[str, Any]]:
    tz = draw.centre.timezone
    rows = db.session.execute(
        select(Slot.id, Slot.start, Slot.capacity, Slot.booked)
        .where(*_draw_slots(draw), Slot.booked < Slot.capacity)
        .order_by(Slot.start, Slot.id)
    ).all()
    return [
        {
            "slot_id": row.id,
            "start": row.start.astimezone(zoneinfo.ZoneInfo(tz)).isoformat(),
            "part_of_day": part_of_day(row.start, tz),
            "seats": row.capacity - row.booked,
        }
        for row in rows
    ]


class _Screen:
    """The checks of entrants at the draw, read a chunk of entrants at a time (a few queries a chunk).

    The same rules as at entry (`_check_entrant`): suspensions in force for the service, an active
    booking or a live entry of the group, and eligibility. Accounts and registry records are loaded in
    bulk and held, so the per-entrant eligibility check finds them in the session instead of the database.
    """

    def __init__(self, draw: Draw, service: Service) -> None:
        self.draw, self.service = draw, service
        self.held: list[Any] = []  # the session's identity map is weak: keep what was loaded alive
        self.loaded: set[int] = set()
        self.refused: dict[int, str] = {}

    def load(self, account_ids: Sequence[int]) -> None:
        from app.registry.models import RegistryPerson
        from booking.models import BookingSuspension

        ids = [i for i in dict.fromkeys(account_ids) if i not in self.loaded]
        if not ids:
            return
        self.loaded.update(ids)
        accounts = list(db.session.scalars(select(Account).where(Account.id.in_(ids))))
        people = db.session.scalars(
            select(RegistryPerson).where(RegistryPerson.national_id.in_([a.national_id for a in accounts]))
        )
        self.held += [*accounts, *people]
        now = clock.now()
        scopes = ("all", "high_demand") if self.service.high_demand else ("all",)
        for account_id, kind in db.session.execute(
            select(BookingSuspension.account_id, BookingSuspension.kind).where(
                BookingSuspension.account_id.in_(ids),
                BookingSuspension.lifted_at.is_(None),
                BookingSuspension.until > now,
                BookingSuspension.scope.in_(scopes),
            )
        ):
            self.refused.setdefault(account_id, kind)
        group = self.draw.service_group
        for (account_id,) in db.session.execute(
            _active_booking_in_group(ids, group).with_only_columns(Booking.account_id).limit(None)
        ):
            self.refused.setdefault(account_id, "per_group")
        for (account_id,) in db.session.execute(
            _live_entry_in_group(ids, group, other_than=self.draw.id)
            .with_only_columns(DrawEntry.account_id)
            .limit(None)
        ):
            self.refused.setdefault(account_id, "draw_entry")

    def reason(self, account_id: int) -> str | None:
        """Why this entrant is left out at the draw, or None."""
        from booking.services import check_eligibility

        account = db.session.get(Account, account_id)
        if account is None or account.role != "citizen" or not account.is_verified:
            return "account"
        if account_id in self.refused:
            return self.refused[account_id]
        try:
            check_eligibility(account=account, service=self.service, today=self.draw.days_from)
        except AppError as refusal:
            return str(refusal.details.get("reason") or refusal.code)[:40]
        return None


SCREEN_CHUNK = 1000


def _plan(draw_id: int) -> None:
    """Rank every entry, decide the winners' seats and exclusions, and store the plan with the snapshot."""
    draw = get_draw(draw_id=draw_id)
    if draw.status != "drawing" or draw.seats_snapshot is not None:
        db.session.rollback()
        return
    try:
        if _postgres():
            db.session.execute(select(Draw.id).where(Draw.id == draw_id).with_for_update())
        seats = _seat_snapshot(draw)
        entries = db.session.execute(
            select(DrawEntry.id, DrawEntry.account_id, DrawEntry.entry_token, DrawEntry.part_of_day).where(
                DrawEntry.draw_id == draw_id, DrawEntry.status == "entered"
            )
        ).all()
        by_token = {e.entry_token: e for e in entries}
        order = draw_order(draw.seed, by_token)
        service = db.session.get(Service, draw.service_code)
        pool = _SeatPool(seats)
        plan: dict[int, dict[str, Any]] = {}
        candidates: list[Any] = []
        for rank, token in enumerate(order, start=1):
            entry = by_token[token]
            plan[entry.id] = {"id": entry.id, "rank": rank, "planned_slot_id": None, "excluded_reason": None}
            candidates.append(entry)
        # Only entrants who would get a seat are checked now; the waitlisted are checked when offered one.
        screen = _Screen(draw, service)
        for index, entry in enumerate(candidates):
            if pool.empty():
                break
            if index % SCREEN_CHUNK == 0:
                screen.load([c.account_id for c in candidates[index : index + SCREEN_CHUNK]])
            reason = screen.reason(entry.account_id)
            if reason is not None:
                plan[entry.id].update(excluded_reason=reason, status="lost")
                continue
            plan[entry.id]["planned_slot_id"] = pool.take(entry.part_of_day)
        _store_plan([{"status": "entered", **row} for row in plan.values()])
        db.session.execute(
            update(Draw)
            .where(Draw.id == draw_id)
            .values(seats_snapshot=seats)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def _store_plan(rows: list[dict[str, Any]]) -> None:
    """Write every entry's rank, planned seat and exclusion: on PostgreSQL one UPDATE per 5,000 entries."""
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        if not _postgres():
            db.session.execute(update(DrawEntry), chunk)
            continue
        db.session.execute(
            text(
                "UPDATE draw_entries AS e SET rank = v.rank, planned_slot_id = v.slot, "
                "excluded_reason = v.reason, status = v.status "
                "FROM unnest(CAST(:ids AS integer[]), CAST(:ranks AS integer[]), CAST(:slots AS integer[]), "
                "CAST(:reasons AS text[]), CAST(:statuses AS text[])) AS v(id, rank, slot, reason, status) "
                "WHERE e.id = v.id"
            ),
            {
                "ids": [r["id"] for r in chunk],
                "ranks": [r["rank"] for r in chunk],
                "slots": [r["planned_slot_id"] for r in chunk],
                "reasons": [r["excluded_reason"] for r in chunk],
                "statuses": [r["status"] for r in chunk],
            },
        )


def _seat_winners(draw_id: int) -> int:
    """Give the next batch of planned winners their held bookings (one transaction); returns how many.

    The batch takes its seats with one UPDATE and writes its bookings with one multi-row INSERT; if any
    of it trips (a seat gone since the close, a citizen who booked the group meanwhile) the batch is
    redone winner by winner, so the one who tripped waits or is out and the others are seated.
    """
    from notifications.services import notify_citizens

    draw = get_draw(draw_id=draw_id)
    winners = db.session.execute(
        select(DrawEntry.id, DrawEntry.account_id, DrawEntry.planned_slot_id)
        .where(
            DrawEntry.draw_id == draw_id,
            DrawEntry.status == "entered",
            DrawEntry.planned_slot_id.is_not(None),
        )
        .order_by(DrawEntry.rank)
        .limit(WINNER_BATCH)
    ).all()
    if not winners:
        db.session.rollback()
        return 0
    now = clock.now()
    expires = now + dt.timedelta(hours=draw.confirm_hours)
    try:
        slot_ids = sorted({w.planned_slot_id for w in winners})
        if _postgres():
            db.session.execute(
                select(Slot.id).where(Slot.id.in_(slot_ids)).order_by(Slot.id).with_for_update()
            )
        starts = dict(db.session.execute(select(Slot.id, Slot.start).where(Slot.id.in_(slot_ids))).all())
        try:
            with db.session.begin_nested():
                seated = _seat_batch(draw, winners, now, expires)
        except (IntegrityError, _SeatGone):
            seated = [s for w in winners if (s := _seat_one(draw, w, now, expires)) is not None]
        notify_citizens(
            kind="draw_won",
            items=[
                (
                    account_id,
                    {
                        "reference": reference,
                        "booking_id": booking_id,
                        "centre_id": draw.centre_id,
                        "service_code": draw.service_code,
                        "start": starts[slot_id],
                        "until_time": expires,
                        "draw_id": draw.id,
                    },
                    f"draw_won:{entry_id}",
                )
                for entry_id, account_id, booking_id, reference, slot_id in seated
            ],
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return len(winners)


class _SeatGone(Exception):
    """A planned seat is no longer there (capacity lowered since the close)."""


def _booking_row(draw: Draw, winner: Any, now: dt.datetime, expires: dt.datetime) -> dict[str, Any]:
    from booking.services import REFERENCE_ALPHABET, REFERENCE_LENGTH

    return {
        "reference": "BK-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH)),
        "account_id": winner.account_id,
        "slot_id": winner.planned_slot_id,
        "offering_id": draw.offering_id,
        "centre_id": draw.centre_id,
        "service_code": draw.service_code,
        "service_group": draw.service_group,
        "kind": "regular",
        "status": "held",
        "holds_seat": True,
        "hold_expires_at": expires,
        "created_at": now,
        "draw_entry_id": winner.id,
    }


def _seat_batch(draw: Draw, winners: Sequence[Any], now: dt.datetime, expires: dt.datetime) -> list[tuple]:
    """Every winner of the batch seated in three statements; raises if any seat or booking cannot be had."""
    from collections import Counter

    wanted = Counter(w.planned_slot_id for w in winners)
    more = case(*((Slot.id == slot_id, n) for slot_id, n in wanted.items()), else_=0)
    taken = db.session.execute(
        update(Slot)
        .where(Slot.id.in_(list(wanted)), Slot.booked + more <= Slot.capacity)
        .values(booked=Slot.booked + more)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != len(wanted):
        raise _SeatGone()
    rows = db.session.execute(
        insert(Booking).returning(
            Booking.draw_entry_id, Booking.account_id, Booking.id, Booking.reference, Booking.slot_id
        ),
        [_booking_row(draw, w, now, expires) for w in winners],
    ).all()
    db.session.execute(
        update(DrawEntry)
        .where(DrawEntry.id.in_([w.id for w in winners]), DrawEntry.status == "entered")
        .values(status="won")
        .execution_options(synchronize_session=False)
    )
    return [tuple(r) for r in rows]


def _seat_one(draw: Draw, winner: Any, now: dt.datetime, expires: dt.datetime) -> tuple | None:
    """One winner seated on its own: None if its seat went (it waits) or it booked the group (it is out)."""
    from booking.services import _insert_booking

    taken = db.session.execute(
        update(Slot)
        .where(Slot.id == winner.planned_slot_id, Slot.booked < Slot.capacity)
        .values(booked=Slot.booked + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    outcome: dict[str, Any] = {"status": "won"}
    booking = None
    if taken != 1:  # the seat went since the close: the winner waits in its place instead
        outcome = {"status": "waitlisted", "planned_slot_id": None}
    else:
        row = _booking_row(draw, winner, now, expires)
        row.pop("reference")
        try:
            with db.session.begin_nested():
                booking = _insert_booking(row)
        except IntegrityError:  # the citizen holds another booking of the group now: out, seat back
            db.session.execute(
                update(Slot)
                .where(Slot.id == winner.planned_slot_id)
                .values(booked=Slot.booked - 1)
                .execution_options(synchronize_session=False)
            )
            outcome = {"status": "lost", "excluded_reason": "per_group"}
    db.session.execute(
        update(DrawEntry)
        .where(DrawEntry.id == winner.id, DrawEntry.status == "entered")
        .values(**outcome)
        .execution_options(synchronize_session=False)
    )
    if booking is None:
        return None
    return (winner.id, winner.account_id, booking.id, booking.reference, booking.slot_id)


def _finish(draw_id: int) -> None:
    """Waitlist everyone not seated, in draw order, notify them, and publish the draw (one transaction)."""
    from notifications.services import notify_citizens

    draw = get_draw(draw_id=draw_id)
    if draw.status != "drawing":
        db.session.rollback()
        return
    try:
        db.session.execute(
            update(DrawEntry)
            .where(
                DrawEntry.draw_id == draw_id,
                DrawEntry.status == "entered",
                DrawEntry.planned_slot_id.is_(None),
            )
            .values(status="waitlisted")
            .execution_options(synchronize_session=False)
        )
        waiting = db.session.execute(
            select(DrawEntry.id, DrawEntry.account_id)
            .where(DrawEntry.draw_id == draw_id, DrawEntry.status == "waitlisted")
            .order_by(DrawEntry.rank)
        ).all()
        params = {"centre_id": draw.centre_id, "service_code": draw.service_code, "draw_id": draw.id}
        notify_citizens(
            kind="draw_waitlisted",
            items=[(w.account_id, params, f"draw_waitlisted:{w.id}") for w in waiting],
        )
        counts = dict(
            db.session.execute(
                select(DrawEntry.status, func.count())
                .where(DrawEntry.draw_id == draw_id)
                .group_by(DrawEntry.status)
            ).all()
        )
        db.session.execute(
            update(Draw)
            .where(Draw.id == draw_id, Draw.status == "drawing")
            .values(status="drawn", drawn_at=clock.now(), waitlist_open=bool(waiting))
            .execution_options(synchronize_session=False)
        )
        _audit(
            draw,
            "draw.drawn",
            actor_id=None,
            actor_role="system",
            details={"entries": counts, "seed": draw.seed},
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


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
