"""Running a draw at its close: the entries close, the plan is made, winners are seated, the rest wait.

Running a draw is idempotent and resumable. Under a lock per draw (PostgreSQL advisory lock, held on its
own connection): (1) the entries close (`open` → `drawing`, under the entries gate taken exclusively, so
no entry commits after it); (2) the plan (rank, planned seat, exclusion) is computed and stored with the
seat snapshot in one transaction; (3) winners get their held bookings in batches, each booking carrying
its entry id under a unique index, in the transaction that takes its seat and marks the entry `won`;
(4) the rest are waitlisted and the draw is `drawn`. A run that dies anywhere resumes from the step it
reached.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Service
from app.dialect import for_update, on_postgres
from app.errors import AppError
from app.extensions import db
from app.registry.services import lookup_person
from booking import errors
from booking.abuse import check_eligibility
from booking.applicants import (
    Applicant,
    add_applicant_rows,
    add_bookers_as_applicants,
    check_person_eligibility,
    entrant,
)
from booking.draw_entries import entries_gate
from booking.draws import (
    active_booking_in_group,
    audit_draw,
    draw_slots,
    forget_active_draws,
    get_draw,
    live_entry_in_group,
)
from booking.locks import lock_slots
from booking.lottery import SeatPool, draw_order, part_of_day
from booking.models import Booking, BookingApplicant, BookingSuspension, Slot
from booking.references import insert_booking, new_reference
from booking.release_models import UNDRAWN_STATUSES, Draw, DrawEntry
from booking.seats import return_seat

WINNER_BATCH = 250


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
        entries_gate(draw_id, closing=True)
        changed = db.session.execute(
            update(Draw)
            .where(Draw.id == draw_id, Draw.status == "open")
            .values(status="drawing", closed_at=clock.now())
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed == 1:
            audit_draw(draw, "draw.run", actor_id=actor_id, actor_role=actor_role)
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
        .where(*draw_slots(draw), Slot.booked < Slot.capacity)
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

    The same rules as at entry (`_check_entrant`), for the person entered (the citizen or a dependent):
    suspensions in force for the service (the entering citizen's and the person's own), an active booking
    or a live entry of the group, and eligibility. Accounts and registry records are loaded in bulk and
    held, so the per-entrant eligibility check finds them in the session instead of the database.
    """

    def __init__(self, draw: Draw, service: Service) -> None:
        self.draw, self.service = draw, service
        self.held: list[Any] = []  # the session's identity map is weak: keep what was loaded alive
        self.loaded: set[int] = set()
        self.refused: dict[int, str] = {}  # by entering account
        self.refused_person: dict[str, str] = {}  # by national id of the person entered

    def load(self, entries: Sequence[Any]) -> None:
        from app.registry.models import RegistryPerson

        if not entries:
            return
        ids = [i for i in dict.fromkeys(e.account_id for e in entries) if i not in self.loaded]
        nids = list(dict.fromkeys(e.national_id for e in entries))
        self.loaded.update(ids)
        accounts = list(db.session.scalars(select(Account).where(Account.id.in_(ids))))
        people = db.session.scalars(
            select(RegistryPerson).where(
                RegistryPerson.national_id.in_([*nids, *(a.national_id for a in accounts)])
            )
        )
        self.held += [*accounts, *people]
        now = clock.now()
        scopes = ("all", "high_demand") if self.service.high_demand else ("all",)
        for account_id, national_id, kind in db.session.execute(
            select(BookingSuspension.account_id, Account.national_id, BookingSuspension.kind)
            .join(Account, Account.id == BookingSuspension.account_id)
            .where(
                or_(BookingSuspension.account_id.in_(ids), Account.national_id.in_(nids)),
                BookingSuspension.lifted_at.is_(None),
                BookingSuspension.until > now,
                BookingSuspension.scope.in_(scopes),
            )
        ):
            self.refused.setdefault(account_id, kind)
            self.refused_person.setdefault(national_id, kind)
        group = self.draw.service_group
        for (national_id,) in db.session.execute(
            active_booking_in_group(nids, group).with_only_columns(BookingApplicant.national_id).limit(None)
        ):
            self.refused_person.setdefault(national_id, "per_group")
        for (national_id,) in db.session.execute(
            live_entry_in_group(nids, group, other_than=self.draw.id)
            .with_only_columns(DrawEntry.national_id)
            .limit(None)
        ):
            self.refused_person.setdefault(national_id, "draw_entry")

    def reason(self, entry: Any) -> str | None:
        """Why this entry is left out at the draw, or None."""
        account = db.session.get(Account, entry.account_id)
        if account is None or account.role != "citizen" or not account.is_verified:
            return "account"
        if entry.account_id in self.refused:
            return self.refused[entry.account_id]
        if entry.national_id in self.refused_person:
            return self.refused_person[entry.national_id]
        try:
            if entry.national_id == account.national_id:
                check_eligibility(account=account, service=self.service, today=self.draw.days_from)
            else:
                record = lookup_person(entry.national_id)
                check_person_eligibility(record=record, service=self.service, today=self.draw.days_from)
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
        db.session.execute(for_update(select(Draw.id).where(Draw.id == draw_id)))
        seats = _seat_snapshot(draw)
        entries = db.session.execute(
            select(
                DrawEntry.id,
                DrawEntry.account_id,
                DrawEntry.national_id,
                DrawEntry.entry_token,
                DrawEntry.part_of_day,
            ).where(DrawEntry.draw_id == draw_id, DrawEntry.status == "entered")
        ).all()
        by_token = {e.entry_token: e for e in entries}
        order = draw_order(draw.seed, by_token)
        service = db.session.get(Service, draw.service_code)
        pool = SeatPool(seats)
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
                screen.load(candidates[index : index + SCREEN_CHUNK])
            reason = screen.reason(entry)
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
        if not on_postgres():
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
        select(
            DrawEntry.id,
            DrawEntry.account_id,
            DrawEntry.planned_slot_id,
            DrawEntry.national_id,
            (DrawEntry.national_id == Account.national_id).label("own"),
        )
        .join(Account, Account.id == DrawEntry.account_id)
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
        lock_slots(slot_ids)
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
    return {
        "reference": new_reference(),
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
    _add_winners_as_applicants(draw, winners, {r.draw_entry_id: r.id for r in rows})
    db.session.execute(
        update(DrawEntry)
        .where(DrawEntry.id.in_([w.id for w in winners]), DrawEntry.status == "entered")
        .values(status="won")
        .execution_options(synchronize_session=False)
    )
    return [tuple(r) for r in rows]


def _winner_applicant(winner: Any) -> Applicant:
    """The person a dependent's winning entry was made for (the entrant's own win needs no lookup)."""
    return entrant(db.session.get(Account, winner.account_id), winner.national_id)


def _add_winners_as_applicants(draw: Draw, winners: Sequence[Any], booking_of: dict[int, int]) -> None:
    """Each win is its person's alone: the entrant, or the dependent the entry was made for."""
    add_bookers_as_applicants([booking_of[w.id] for w in winners if w.own])
    add_applicant_rows(
        [(booking_of[w.id], [_winner_applicant(w)]) for w in winners if not w.own], group=draw.service_group
    )


def _seat_one(draw: Draw, winner: Any, now: dt.datetime, expires: dt.datetime) -> tuple | None:
    """One winner seated on its own: None if its seat went (it waits) or it booked the group (it is out)."""
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
                booking = insert_booking(row, None if winner.own else [_winner_applicant(winner)])
        except IntegrityError:  # the citizen holds another booking of the group now: out, seat back
            return_seat(winner.planned_slot_id)
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
        audit_draw(
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
