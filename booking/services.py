"""Booking lifecycle: hold → confirm → cancel → reschedule, the citizen's bookings, check-in, urgent passes.

The subjects beside it: seats taken and freed (`booking.seats`), who may book and what is recorded when
not (`booking.abuse`), the cut-off and horizon (`booking.horizon`), locks (`booking.locks`), references
(`booking.references`), slot regeneration (`booking.slot_regeneration`).

PostgreSQL row locks are always taken in the order account → slots (ascending id) → bookings, so
concurrent holds, reschedules, cancels and sweeps cannot deadlock; partial unique indexes make "one
active booking per service group" and "one hold" hold under any race. A slot found full closes the
sold-out gate (booking/seatgate.py) for a moment: holds on it are refused from Redis, never granted by it.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import and_, bindparam, func, or_, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Centre, Offering, Service
from app.database import UTCDateTime, commit_keeping_state
from app.dialect import insert_ignoring, on_postgres
from app.errors import AppError
from app.extensions import db
from app.registry.models import RegistryPerson
from app.registry.services import DatabaseRegistry, get_registry, registry_record
from booking import draws, errors, seatgate
from booking.abuse import (
    NOT_READ,
    apply_cancel_cooldown,
    bind_device,
    check_applicants,
    check_citizen,
    check_quotas,
    get_citizen,
    integrity_refusal,
    read_standing,
    record_refusal,
    record_sanction_event,
)
from booking.applicants import (
    add_applicants,
    add_bookers_as_applicants,
    applicant_rows,
    check_applicant_list,
    resolve_applicants,
)
from booking.horizon import check_booking_window
from booking.localtime import local_iso
from booking.locks import lock_account, lock_slots
from booking.models import Booking, Slot, UrgentReserveUsage
from booking.notices import booking_notice, new_booking_notice, notify_booking
from booking.references import (
    SlotShort,
    insert_booking,
    insert_booking_with_notice,
    normalise_reference,
    unused_reference,
)
from booking.seats import free_due_seats, next_release, release_slot_seats, return_seat, slot_full, take_seat
from notifications.models import Notification
from notifications.services import NOTIFICATION_COLUMNS, insert_notification


def _cfg(name: str) -> Any:
    return current_app.config[name]


# ------------------------------------------------------------------------------------------ lookups


def get_booking(*, account_id: int, reference: str) -> Booking:
    """The citizen's own booking by reference (another citizen's answers 404)."""
    booking = db.session.scalar(
        select(Booking)
        .options(joinedload(Booking.slot), joinedload(Booking.centre))
        .where(Booking.reference == normalise_reference(reference), Booking.account_id == account_id)
        .execution_options(populate_existing=True)
    )
    if booking is None:
        raise errors.BookingNotFound()
    return booking


def list_bookings(*, account_id: int, status: str | None = None):
    """The citizen's bookings, newest first, as a query to paginate."""
    query = (
        select(Booking)
        .options(joinedload(Booking.slot), joinedload(Booking.centre))
        .where(Booking.account_id == account_id)
        .order_by(Booking.created_at.desc(), Booking.id.desc())
    )
    if status:
        query = query.where(Booking.status == status)
    return query


_BOOKABLE = (
    select(
        Slot,
        Offering,
        Service,
        Centre,
        and_(
            Slot.open.is_(True), Offering.active.is_(True), Service.active.is_(True), Centre.active.is_(True)
        ).label("bookable"),
    )
    .join(Offering, Offering.id == Slot.offering_id)
    .join(Service, Service.code == Offering.service_code)
    .join(Centre, Centre.id == Offering.centre_id)
    .where(Slot.id == bindparam("slot"))
)


@functools.cache
def _bookable_for(first_come: bool, registry: bool, lateral: bool) -> Any:
    """`_BOOKABLE` with the holding citizen's account under its row lock (the first lock of a hold) when
    the slot has the seats asked for (`seats`), and then, when the registry is the local table, their
    registry record if the service has an eligibility rule (handed to the check, which would otherwise ask
    for it). With the draw check of a first-come hold, when a draw runs in the slot's offering or group.

    `lateral` (PostgreSQL): the account comes from a `LATERAL (… FOR UPDATE)` subquery that finds it only
    when the slot has the seats, so a slot seen short is refused as before, by a read that locks nothing
    (no transaction id, no WAL: a release day's refusals write nothing). Without it (SQLite, whose writes
    are serialised anyway) the account is joined as it is.

    The slot itself is not locked (a read), so the lock order stays account → slot. Whatever the hold then
    reads about the citizen's own bookings is a later statement, with a snapshot taken after this lock."""
    if lateral:
        locked = (
            select(Account)
            .where(Account.id == bindparam("account"), Slot.capacity - Slot.booked >= bindparam("seats"))
            .with_for_update()
            .lateral("holder")
        )
        holder = aliased(Account, locked, name="holder")
        statement = _BOOKABLE.add_columns(holder).outerjoin(locked, true())
    else:
        holder = aliased(Account, name="holder")
        statement = _BOOKABLE.add_columns(holder).join(holder, holder.id == bindparam("account"))
    if registry:
        statement = statement.add_columns(RegistryPerson).outerjoin(
            RegistryPerson,
            and_(RegistryPerson.national_id == holder.national_id, Service.eligibility != "none"),
        )
    if first_come:
        statement = statement.add_columns(
            *draws.first_come_columns(Slot.offering_id, Slot.local_date, Service.group, bindparam("account"))
        )
    return statement


def _bookable_slot(slot_id: int) -> tuple[Slot, Offering, Service, Centre]:
    """The slot with its offering, service and centre, all open (404 slot_not_found), in one read."""
    row = db.session.execute(_BOOKABLE, {"slot": slot_id}).first()
    if row is None or not row.bookable:
        raise errors.SlotNotFound()
    return row[0], row[1], row[2], row[3]


def _bookable_slot_locking(
    slot_id: int, account_id: int, seats: int
) -> tuple[Slot, Offering, Service, Centre, Any, Any]:
    """For a first-come hold: the slot as `_bookable_slot`; when it has the `seats`, the citizen's account,
    locked (else None: the caller locks it, if the hold goes on, with `get_citizen`); and their registry
    record for the service's eligibility rule (None: not in the registry; `NOT_READ` when not read), in one
    read (`_bookable_for`). The caller checks the account with `check_citizen`.

    When a draw runs in the slot's offering or group, the same read asks the draws, and a day a draw gives
    is refused 409 in_draw (an entry that counts, active_booking_exists) before anything else."""
    # While any draw runs, the read carries the draw columns (NULL for a slot no draw concerns) rather than
    # first asking which offering and group the slot is in: no round trip of its own.
    check = draws.draws_running()
    local_registry = isinstance(get_registry(), DatabaseRegistry)
    row = db.session.execute(
        _bookable_for(check, local_registry, on_postgres()),
        {"slot": slot_id, "account": account_id, "seats": seats},
    ).first()
    if row is not None and check:
        draws.refuse_first_come(row.draw_id, row.entry_draw, row[2].group)
    if row is None or not row.bookable:
        raise errors.SlotNotFound()
    record = NOT_READ
    if row.holder is not None and local_registry and row.Service.eligibility != "none":
        record = registry_record(row.RegistryPerson) if row.RegistryPerson is not None else None
    return row[0], row[1], row[2], row[3], row.holder, record


# ----------------------------------------------------------------------- hold → confirm → cancel


def hold_slot(
    *,
    account_id: int,
    slot_id: int,
    applicants: Sequence[str] | None = None,
    device_id: str | None = None,
    ip: str | None = None,
) -> Booking:
    """Hold a seat per applicant of a slot for HOLD_SECONDS, all or none (201 held); abuse refusals recorded.

    `applicants`: national ids of the citizen and/or their dependents on the slot's day (default: the
    citizen alone). One transaction, in the lock order account → slot. A slot seen full a moment ago is
    refused by the sold-out gate (Redis) before any database work; a slot without the seats asked for and
    nothing due for release is refused by one read, with no lock and no write (and closes the gate if full).
    """
    if applicants:
        check_applicant_list(applicants)
    seats = len(applicants) if applicants else 1
    gate = seatgate.check(slot_id)
    if gate == seatgate.CLOSED:
        raise slot_full(slot_id, seats=seats, available=0)
    # After the gate: a slot seen full a moment ago is refused without reading the draws (a release day's
    # refusals are most of its traffic). The draw check (409 in_draw) is in the slot's read; its refusals,
    # like slot_not_found, are not abuse and are not recorded.
    try:
        slot, offering, service, centre, account, record = _bookable_slot_locking(slot_id, account_id, seats)
    except AppError:
        db.session.rollback()
        raise
    group, released, people = service.group, [], []
    try:
        now = clock.now()
        _refuse_if_short(slot, seats, now)
        if gate == seatgate.PROBE:  # seats to be had again: every hold may ask the database
            seatgate.reopen(slot_id)
        # Locked by the slot's read, unless that found the slot short (and seats fall due now).
        account = check_citizen(account) if account is not None else get_citizen(account_id, lock=True)
        check_booking_window(
            slot.start, now=now, expatriate=account.is_expatriate, offering=offering, timezone=centre.timezone
        )
        people = resolve_applicants(account=account, national_ids=applicants, on=slot.local_date)
        standing = read_standing(
            account_id=account_id, group=group, now=now, national_ids=[p.national_id for p in people]
        )
        check_applicants(
            account,
            people,
            service,
            now=now,
            tz=centre.timezone,
            today=slot.local_date,
            suspensions=standing.suspensions,
            booker_record=record,
        )
        bind_device(account_id, device_id, now)
        released = check_quotas(account_id, group, now, people, standing)
        _free_released(released, slot_id, now)
        values = {
            "account_id": account_id,
            "slot_id": slot_id,
            "offering_id": offering.id,
            "centre_id": centre.id,
            "service_code": service.code,
            "service_group": service.group,
            "kind": "regular",
            "status": "held",
            "holds_seat": True,
            "seats": seats,
            "hold_expires_at": now + dt.timedelta(seconds=_cfg("HOLD_SECONDS")),
            "device_id": (device_id or None) and device_id[:128],
            "created_at": now,
        }
        if on_postgres():  # the seats, the booking, its people and its notification in one statement
            insert = functools.partial(
                insert_booking_with_notice,
                values,
                people,
                notice=lambda reference: new_booking_notice(
                    values, reference, "booking_held", language=account.language, start=slot.start
                ),
                dedupe_prefix="booking_held:",
            )
            try:
                booking = insert(take_seats=seats)
            except SlotShort:
                _take_seats_when_short(slot_id, seats, now)
                booking = insert()
        else:
            if not take_seat(slot_id, seats):
                _take_seats_when_short(slot_id, seats, now)
            booking = insert_booking(values, people)
            notify_booking(
                booking,
                "booking_held",
                dedupe=f"booking_held:{booking.id}",
                language=account.language,
                start=slot.start,
            )
        # The answer is built from the rows in hand: linked without history (nothing to flush), kept
        # unexpired through the commit, so serialising it needs no reload.
        set_committed_value(booking, "slot", slot)
        set_committed_value(booking, "centre", centre)
        set_committed_value(booking, "applicants", applicant_rows(booking, people))
        commit_keeping_state(db.session)
    except IntegrityError as exc:
        db.session.rollback()
        refusal = integrity_refusal(exc, group, people)
        record_refusal(refusal, account_id=account_id, device_id=device_id, ip=ip, slot_id=slot_id)
        raise refusal from exc
    except AppError as refusal:
        db.session.rollback()
        # Only the abuse refusals (ABUSE_RULES) are recorded: a stranger named as applicant, eligibility...
        record_refusal(refusal, account_id=account_id, device_id=device_id, ip=ip, slot_id=slot_id)
        raise
    except Exception:
        db.session.rollback()
        raise
    if released:
        seatgate.reopen(*released)
    return booking


def _refuse_if_short(slot: Slot, seats: int, now: dt.datetime) -> None:
    """A slot without the seats asked for and nothing due for release is refused at once (closing the
    sold-out gate when it is full)."""
    if slot.capacity - slot.booked >= seats:
        return
    due = db.session.scalar(next_release(slot.id))
    if due is None or due > now:
        db.session.rollback()
        if slot.booked >= slot.capacity:
            seatgate.close(slot.id, now=now, next_release=due)
        raise slot_full(slot.id, seats=seats, available=slot.capacity - slot.booked)


def _free_released(released: list[int], slot_id: int, now: dt.datetime) -> None:
    """Free the expired holds in the way of a new hold (`check_quotas`), so they never block it; the slots
    locked in id order, the new hold's among them."""
    if released:
        lock_slots([*released, slot_id])
        for expired_slot in sorted(set(released)):
            free_due_seats(expired_slot, now)


def _take_seats_when_short(slot_id: int, seats: int, now: dt.datetime) -> None:
    """The seat UPDATE found the slot short: free the seats that fell due (expired holds, cancels past
    their delay) and try once more, under the slot lock, so a release committed meanwhile by someone else
    counts too (409 slot_full if still short)."""
    lock_slots([slot_id])
    free_due_seats(slot_id, now)
    if not take_seat(slot_id, seats):
        raise slot_full(slot_id, seats=seats)


def _apply_or_reread(statement: Any, *, account_id: int, reference: str, done: str) -> Booking | None:
    """Run a booking's conditional UPDATE: None when it applied, else the booking as it is now (`_reread`)."""
    if db.session.execute(statement.execution_options(synchronize_session=False)).rowcount == 1:
        return None
    return _reread(account_id=account_id, reference=reference, done=done)


def _reread(*, account_id: int, reference: str, done: str) -> Booking:
    """After a booking's conditional UPDATE matched nothing: the booking changed since it was read (or its
    hold ran out). The command's transaction is rolled back and the booking read again. Already `done` is
    answered as it is; a hold that ran out frees its seat now and answers 410 hold_expired; anything else
    is refused.
    """
    db.session.rollback()
    current = get_booking(account_id=account_id, reference=reference)
    if current.status == done:
        return current
    if current.status in ("held", "expired"):
        if current.status == "held" and current.slot_id is not None:
            release_slot_seats(slot_id=current.slot_id)
        raise errors.HoldExpired()
    raise errors.InvalidBookingState(details={"status": current.status})


@functools.cache
def _confirm_statement() -> Any:
    """PostgreSQL: confirm a live hold and queue its notification in one statement (the UPDATE in a CTE,
    the notification inserted from its row, so only when it applied), answering the ids confirmed."""
    confirmed = (
        update(Booking.__table__)
        .where(
            Booking.__table__.c.id == bindparam("booking_id"),
            Booking.__table__.c.status == "held",
            Booking.__table__.c.hold_expires_at > bindparam("now", type_=UTCDateTime()),
        )
        .values(status="confirmed", confirmed_at=bindparam("now", type_=UTCDateTime()))
        .returning(Booking.__table__.c.id)
        .cte("confirmed")
    )
    table = Notification.__table__
    notice = select(*(bindparam(f"n_{c}", type_=table.c[c].type) for c in NOTIFICATION_COLUMNS))
    told = (
        postgresql.insert(table)
        .from_select(NOTIFICATION_COLUMNS, notice.select_from(confirmed))
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .cte("told")
    )
    return select(confirmed.c.id).add_cte(told)


def _confirm(booking: Booking, now: dt.datetime, notice: dict[str, Any]) -> bool:
    """Confirm the hold if still live, with its notification; whether it applied. PostgreSQL: one statement,
    atomic by itself (the caller's read ran in autocommit: no BEGIN, no COMMIT); SQLite: two."""
    if on_postgres():
        params = {
            "booking_id": booking.id,
            "now": now,
            **{f"n_{k}": notice[k] for k in NOTIFICATION_COLUMNS},
        }
        return db.session.execute(_confirm_statement(), params).first() is not None
    applied = db.session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == "held", Booking.hold_expires_at > now)
        .values(status="confirmed", confirmed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if applied:
        insert_notification(notice)
    return bool(applied)


def _live_at(now: dt.datetime):
    """SQL: the booking is confirmed, or held with its hold still running."""
    return or_(Booking.status == "confirmed", and_(Booking.status == "held", Booking.hold_expires_at > now))


def confirm_booking(*, account_id: int, reference: str) -> Booking:
    """Confirm a live hold (410 hold_expired once it ran out); confirming twice is harmless."""
    # One read: the booking with its slot and centre, its service (in the session for the notification's
    # text) and the account's language, so the notification below reads nothing more. On PostgreSQL in
    # autocommit: the change is then one statement (`_confirm`), so no transaction is opened at all.
    if on_postgres() and not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (
        db.session.execute(
            select(Booking, Service, Account.language)
            .options(joinedload(Booking.slot), joinedload(Booking.centre), joinedload(Booking.applicants))
            .join(Account, Account.id == Booking.account_id)
            .outerjoin(Service, Service.code == Booking.service_code)
            .where(Booking.reference == normalise_reference(reference), Booking.account_id == account_id)
            .execution_options(populate_existing=True)
        )
        .unique()
        .first()
    )
    if row is None:
        raise errors.BookingNotFound()
    booking, _service, language = row
    if booking.status == "confirmed":
        return booking
    if booking.status == "expired":
        raise errors.HoldExpired()
    if booking.status != "held":
        raise errors.InvalidBookingState(details={"status": booking.status})
    now = clock.now()
    notice = booking_notice(
        booking,
        "booking_confirmed",
        dedupe=f"booking_confirmed:{booking.id}",
        language=language,
        start=booking.slot.start,
    )
    if not _confirm(booking, now, notice):
        return _reread(account_id=account_id, reference=reference, done="confirmed")
    set_committed_value(booking, "status", "confirmed")
    set_committed_value(booking, "confirmed_at", now)
    commit_keeping_state(db.session)  # the row is what the UPDATE above wrote: answered without a reload
    return booking


def cancel_booking(*, account_id: int, reference: str) -> Booking:
    """Cancel a hold or a confirmed booking; its seat returns to sale after CANCEL_RELEASE_DELAY_MINUTES."""
    booking = get_booking(account_id=account_id, reference=reference)
    if booking.status == "cancelled":
        return booking
    now = clock.now()
    if booking.kind == "regular" and booking.slot is not None and booking.slot.start <= now:
        raise errors.InvalidBookingState(details={"status": booking.status, "reason": "already_started"})
    if booking.kind == "urgent" and booking.status != "confirmed":
        raise errors.InvalidBookingState(details={"status": booking.status})
    release_at = now + dt.timedelta(minutes=_cfg("CANCEL_RELEASE_DELAY_MINUTES"))
    suspension = None
    try:
        lock_account(account_id)
        current = _apply_or_reread(
            update(Booking)
            .where(Booking.id == booking.id, _live_at(now))
            .values(status="cancelled", cancelled_at=now, seat_release_at=release_at),
            account_id=account_id,
            reference=reference,
            done="cancelled",
        )
        if current is not None:
            return current
        if booking.kind == "urgent":
            db.session.execute(
                update(UrgentReserveUsage)
                .where(
                    UrgentReserveUsage.offering_id == booking.offering_id,
                    UrgentReserveUsage.local_date == booking.urgent_date,
                    UrgentReserveUsage.used > 0,
                )
                .values(used=UrgentReserveUsage.used - 1)
            )
        else:
            suspension = apply_cancel_cooldown(account_id, now)
        start = booking.slot.start if booking.slot is not None else None
        notify_booking(booking, "booking_cancelled", dedupe=f"booking_cancelled:{booking.id}", start=start)
        if suspension is not None:
            notify_booking(
                booking,
                "booking_cooldown",
                dedupe=f"booking_cooldown:{suspension.id}",
                until=suspension.until,
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if booking.slot_id is not None and release_at <= now:
        release_slot_seats(slot_id=booking.slot_id)  # free now: to whoever waits for it, else to sale
    seatgate.reopen(booking.slot_id)  # with no release delay the seat is free now: ask the database again
    if suspension is not None:
        record_sanction_event(suspension)
    return get_booking(account_id=account_id, reference=reference)


def reschedule_booking(*, account_id: int, reference: str, slot_id: int) -> Booking:
    """Move a booking to another slot of the same service: the old seat is freed only if the new is taken."""
    booking = get_booking(account_id=account_id, reference=reference)
    now = clock.now()
    if booking.kind != "regular" or booking.slot is None:
        raise errors.InvalidBookingState(details={"status": booking.status, "reason": "urgent"})
    if booking.status == "held" and booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        raise errors.HoldExpired()
    if booking.status not in ("held", "confirmed"):
        raise errors.InvalidBookingState(details={"status": booking.status})
    if booking.slot.start <= now:
        raise errors.InvalidBookingState(details={"status": booking.status, "reason": "already_started"})
    if booking.slot_id == slot_id:
        raise errors.SameSlot()
    account = get_citizen(account_id)
    new_slot, offering, service, centre = _bookable_slot(slot_id)
    if service.code != booking.service_code:
        raise errors.WrongService(details={"service": booking.service_code})
    check_booking_window(
        new_slot.start, now=now, expatriate=account.is_expatriate, offering=offering, timezone=centre.timezone
    )
    old_slot_id, seats = booking.slot_id, booking.seats
    try:
        lock_slots([old_slot_id, slot_id])
        free_due_seats(slot_id, now)
        if not take_seat(slot_id, seats):  # every seat of the booking on the new slot, or none
            raise slot_full(slot_id, seats=seats)
        moved = db.session.execute(
            update(Booking)
            .where(
                Booking.id == booking.id,
                Booking.slot_id == old_slot_id,
                Booking.holds_seat.is_(True),
                _live_at(now),
            )
            .values(slot_id=slot_id, offering_id=offering.id, centre_id=centre.id, rescheduled_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            raise errors.InvalidBookingState(details={"reason": "changed_concurrently"})
        return_seat(old_slot_id, seats)
        booking.slot_id, booking.centre_id = slot_id, centre.id
        notify_booking(
            booking,
            "booking_rescheduled",
            dedupe=f"booking_rescheduled:{booking.id}:{slot_id}:{now.timestamp()}",
            start=new_slot.start,
            centre_id=centre.id,
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    seatgate.reopen(old_slot_id)
    db.session.expire_all()
    return get_booking(account_id=account_id, reference=reference)


def booking_calendar(*, account_id: int, reference: str) -> bytes:
    """The citizen's booking as an iCalendar file in the centre's zone (VTIMEZONE included)."""
    import icalendar

    booking = get_booking(account_id=account_id, reference=reference)
    centre = booking.centre
    service = db.session.get(Service, booking.service_code)
    zone = zoneinfo.ZoneInfo(centre.timezone)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Sanad Booking//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"{booking.reference}@sanad-booking")
    event.add("dtstamp", clock.now())
    service_name = f"{service.name_en} / {service.name_ar}" if service is not None else booking.service_code
    event.add("summary", f"{service_name} ({booking.reference})")
    if booking.slot is not None:
        event.add("dtstart", booking.slot.start.astimezone(zone))
        event.add("dtend", booking.slot.end.astimezone(zone))
    else:
        event.add("dtstart", booking.urgent_date)
        event.add("dtend", booking.urgent_date + dt.timedelta(days=1))
    event.add("location", f"{centre.name_en}, {centre.address_en} / {centre.name_ar}، {centre.address_ar}")
    people = "".join(
        f"\n{n}. {a.full_name_en} / {a.full_name_ar} ({a.national_id})"
        for n, a in enumerate(booking.applicants, start=1)
    )
    event.add(
        "description",
        f"Booking reference: {booking.reference}\nرقم الحجز: {booking.reference}\n"
        f"Service: {booking.service_code}\nStatus: {booking.status}\n"
        f"Applicants / المتقدّمون ({booking.seats}):{people}",
    )
    event.add("status", "CANCELLED" if booking.status in ("cancelled", "expired") else "CONFIRMED")
    cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()


# ------------------------------------------------------------------ interfaces for queue and urgent


@dataclass(frozen=True, slots=True)
class CheckedIn:
    """A booking just checked in at its centre (the queue turns it into a ticket)."""

    booking_id: int
    reference: str
    account_id: int
    centre_id: str
    service_code: str
    kind: str
    slot_start: dt.datetime | None
    late: bool
    seats: int = 1  # people on the booking (a family's seats; 1 where bookings have no `seats`)


@dataclass(frozen=True, slots=True)
class UpcomingVisit:
    """A confirmed booking starting soon (for reminders)."""

    booking_id: int
    reference: str
    account_id: int
    centre_id: str
    timezone: str
    service_code: str
    slot_start: dt.datetime


def check_in_window(booking: Booking) -> tuple[dt.datetime, dt.datetime]:
    """When a booking may check in: around its slot start, or its whole urgent day (centre-local)."""
    if booking.kind == "urgent" or booking.slot is None:
        from booking.slotgen import local_day_bounds_utc

        return local_day_bounds_utc(booking.urgent_date, booking.centre.timezone)
    start = booking.slot.start
    return (
        start - dt.timedelta(minutes=_cfg("CHECK_IN_BEFORE_MINUTES")),
        start + dt.timedelta(minutes=_cfg("CHECK_IN_AFTER_MINUTES")),
    )


def mark_checked_in(*, reference: str, centre_id: str, allow_late: bool = False) -> CheckedIn:
    """Check a confirmed booking in at its centre inside its window (no commit)."""
    booking = db.session.scalar(
        select(Booking)
        .options(joinedload(Booking.slot), joinedload(Booking.centre))
        .where(Booking.reference == normalise_reference(reference))
    )
    if booking is None or booking.centre_id != centre_id:
        raise errors.BookingNotFound()
    if booking.status == "held":
        raise errors.BookingNotConfirmed(details={"status": booking.status})
    if booking.status != "confirmed":
        raise errors.InvalidBookingState(details={"status": booking.status})
    now = clock.now()
    tz = booking.centre.timezone
    opens, closes = check_in_window(booking)
    window = {"window_start": local_iso(opens, tz), "window_end": local_iso(closes, tz)}
    late = False
    if now < opens:
        raise errors.CheckInWindow(details={**window, "reason": "too_early"})
    if now > closes:
        same_day = (
            booking.slot is not None
            and now.astimezone(zoneinfo.ZoneInfo(tz)).date() == booking.slot.local_date
        )
        if not (allow_late and same_day and booking.kind == "regular"):
            raise errors.CheckInWindow(details={**window, "reason": "too_late"})
        late = True
    changed = db.session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == "confirmed")
        .values(status="checked_in", checked_in_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise errors.InvalidBookingState(details={"reason": "changed_concurrently"})
    booking.status, booking.checked_in_at = "checked_in", now
    return CheckedIn(
        booking_id=booking.id,
        reference=booking.reference,
        account_id=booking.account_id,
        centre_id=booking.centre_id,
        service_code=booking.service_code,
        kind=booking.kind,
        slot_start=booking.slot.start if booking.slot is not None else None,
        late=late,
        seats=getattr(booking, "seats", None) or 1,
    )


def checked_in_owner(*, reference: str, centre_id: str) -> tuple[int, int] | None:
    """(booking id, account id) of a booking at the centre that is checked in already, else None."""
    row = db.session.execute(
        select(Booking.id, Booking.account_id).where(
            Booking.reference == normalise_reference(reference),
            Booking.centre_id == centre_id,
            Booking.status == "checked_in",
        )
    ).first()
    return (row.id, row.account_id) if row is not None else None


def check_in_same_day_bookings(*, checked: CheckedIn, limit: int) -> list[CheckedIn]:
    """Up to `limit` of the citizen's other confirmed regular bookings at the same centre on the same local
    day, checked in with it where their own window is open now (the others are left for later), in slot
    order (no commit). One being checked in by another transaction right now is skipped, not waited for
    (that check-in joins the visit itself)."""
    if checked.slot_start is None or limit <= 0:
        return []
    day = db.session.scalar(
        select(Slot.local_date)
        .join(Booking, Booking.slot_id == Slot.id)
        .where(Booking.id == checked.booking_id)
    )
    query = (
        select(Booking.reference)
        .join(Slot, Booking.slot_id == Slot.id)
        .where(
            Booking.account_id == checked.account_id,
            Booking.centre_id == checked.centre_id,
            Booking.status == "confirmed",
            Booking.kind == "regular",
            Booking.id != checked.booking_id,
            Slot.local_date == day,
        )
        .order_by(Slot.start, Booking.id)
    )
    if on_postgres():
        query = query.with_for_update(of=Booking, skip_locked=True)
    companions = []
    for reference in db.session.scalars(query).all():
        if len(companions) >= limit:
            break
        try:
            companions.append(mark_checked_in(reference=reference, centre_id=checked.centre_id))
        except (errors.CheckInWindow, errors.InvalidBookingState, errors.BookingNotConfirmed):
            continue  # refused before anything was written: checked in on its own later, or never
    return companions


def complete_booking(*, booking_id: int) -> None:
    """A checked-in booking's visit is over (no commit)."""
    db.session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.status == "checked_in")
        .values(status="completed", completed_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def create_urgent_booking(
    *,
    account_id: int,
    centre_id: str,
    service_code: str,
    local_date: dt.date,
    applicant_national_id: str | None = None,
) -> Booking:
    """An approved urgent pass for a day from the daily reserve, outside slot capacity (no commit).

    `applicant_national_id`: the dependent the pass is for (checked when the request was filed and again
    here, on its day); default the citizen.
    """
    from app.catalogue.services import get_offering

    offering = get_offering(centre_id=centre_id, service_code=service_code)
    reserve = offering.urgent_reserve_per_day
    if reserve <= 0:
        raise errors.UrgentReserveExhausted(details={"date": local_date.isoformat(), "reserve": reserve})
    db.session.execute(
        insert_ignoring(
            UrgentReserveUsage,
            index_elements=["offering_id", "local_date"],
            offering_id=offering.id,
            local_date=local_date,
            used=0,
        )
    )
    taken = db.session.execute(
        update(UrgentReserveUsage)
        .where(
            UrgentReserveUsage.offering_id == offering.id,
            UrgentReserveUsage.local_date == local_date,
            UrgentReserveUsage.used < reserve,
        )
        .values(used=UrgentReserveUsage.used + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise errors.UrgentReserveExhausted(details={"date": local_date.isoformat(), "reserve": reserve})
    now = clock.now()
    booking = Booking(
        reference=unused_reference(),
        account_id=account_id,
        slot_id=None,
        offering_id=offering.id,
        centre_id=offering.centre_id,
        service_code=offering.service_code,
        service_group=offering.service.group,
        kind="urgent",
        urgent_date=local_date,
        status="confirmed",
        holds_seat=False,
        created_at=now,
        confirmed_at=now,
    )
    db.session.add(booking)
    db.session.flush()
    if applicant_national_id is None:
        add_bookers_as_applicants([booking.id])
    else:
        account = get_citizen(account_id)
        people = resolve_applicants(account=account, national_ids=[applicant_national_id], on=local_date)
        add_applicants(booking_id=booking.id, applicants=people, group=booking.service_group, active=False)
    return booking


def urgent_reserve_figures(*, centre_id: str, local_date: dt.date) -> dict[str, int]:
    """A centre's urgent passes used on a local day, of the reserve its active offerings keep for it."""
    offerings = db.session.execute(
        select(Offering.id, Offering.urgent_reserve_per_day).where(
            Offering.centre_id == centre_id, Offering.active.is_(True)
        )
    ).all()
    used = db.session.scalar(
        select(func.coalesce(func.sum(UrgentReserveUsage.used), 0)).where(
            UrgentReserveUsage.offering_id.in_([offering_id for offering_id, _ in offerings]),
            UrgentReserveUsage.local_date == local_date,
        )
    )
    return {"used": int(used or 0), "total": sum(reserve for _, reserve in offerings)}


def confirmed_bookings_starting(*, start: dt.datetime, end: dt.datetime) -> list[UpcomingVisit]:
    """Confirmed regular bookings whose slot starts in [start, end)."""
    rows = db.session.execute(
        select(Booking, Slot.start, Centre.timezone)
        .join(Slot, Slot.id == Booking.slot_id)
        .join(Centre, Centre.id == Booking.centre_id)
        .where(Booking.status == "confirmed", Slot.start >= start, Slot.start < end)
        .order_by(Slot.start, Booking.id)
    ).all()
    return [
        UpcomingVisit(
            booking_id=b.id,
            reference=b.reference,
            account_id=b.account_id,
            centre_id=b.centre_id,
            timezone=tz,
            service_code=b.service_code,
            slot_start=slot_start,
        )
        for b, slot_start, tz in rows
    ]


__all__ = [
    "CheckedIn",
    "UpcomingVisit",
    "cancel_booking",
    "complete_booking",
    "confirm_booking",
    "confirmed_bookings_starting",
    "create_urgent_booking",
    "hold_slot",
    "mark_checked_in",
    "reschedule_booking",
]
