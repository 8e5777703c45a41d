"""What the queue and urgent domains call: check-in rule, urgent passes, reminders, completion."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app import clock
from app.errors import NotFound
from app.extensions import db
from booking import services
from booking.errors import BookingNotConfirmed, CheckInWindow, UrgentReserveExhausted
from booking.models import Booking, UrgentReserveUsage


def _confirmed(kit, offering, hours_ahead=2.0, citizen=None, start=None):
    citizen = citizen or kit.citizen_id()
    slot = kit.slot(offering, hours_ahead=hours_ahead, start=start)
    booking = services.hold_slot(account_id=citizen, slot_id=slot.id)
    services.confirm_booking(account_id=citizen, reference=booking.reference)
    db.session.rollback()  # SQLite: end the read transaction before `kit` writes from another session
    return booking, slot


def test_check_in_window(rctx, kit):
    offering = kit.offering()
    booking, slot = _confirmed(kit, offering)
    centre = offering.centre_id

    clock.travel_to(slot.start - dt.timedelta(minutes=31))
    with pytest.raises(CheckInWindow) as early:
        services.mark_checked_in(reference=booking.reference, centre_id=centre)
    assert early.value.details["reason"] == "too_early"
    assert early.value.details["window_start"].endswith("+03:00")
    with pytest.raises(NotFound):
        services.mark_checked_in(reference=booking.reference, centre_id="another-centre")
    with pytest.raises(NotFound):
        services.mark_checked_in(reference="BK-NOPE99", centre_id=centre)

    clock.travel_to(slot.start - dt.timedelta(minutes=29))
    checked = services.mark_checked_in(reference=booking.reference.lower(), centre_id=centre)
    db.session.commit()
    assert checked.late is False and checked.slot_start == slot.start
    assert checked.kind == "regular" and checked.account_id == booking.account_id
    assert db.session.get(Booking, booking.id).status == "checked_in"
    with pytest.raises(Exception) as twice:
        services.mark_checked_in(reference=booking.reference, centre_id=centre)
    assert twice.value.code == "invalid_booking_state"

    services.complete_booking(booking_id=booking.id)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).status == "completed"


def _tomorrow_at(hour: int, zone: str = "Asia/Amman") -> dt.datetime:
    """A centre-local time of day tomorrow, so a test never crosses local midnight by when it runs."""
    local = clock.now().astimezone(ZoneInfo(zone)) + dt.timedelta(days=1)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def test_late_check_in_only_when_allowed_and_same_day(rctx, kit):
    offering = kit.offering()
    booking, slot = _confirmed(kit, offering, start=_tomorrow_at(10))
    clock.travel_to(slot.start + dt.timedelta(minutes=16))
    with pytest.raises(CheckInWindow):
        services.mark_checked_in(reference=booking.reference, centre_id=offering.centre_id)
    late = services.mark_checked_in(
        reference=booking.reference, centre_id=offering.centre_id, allow_late=True
    )
    assert late.late is True


def test_a_hold_must_be_confirmed_before_check_in(rctx, kit):
    offering = kit.offering()
    citizen = kit.citizen_id()
    slot = kit.slot(offering, hours_ahead=2)
    booking = services.hold_slot(account_id=citizen, slot_id=slot.id)
    clock.travel_to(slot.start - dt.timedelta(minutes=10))
    with pytest.raises(BookingNotConfirmed):
        services.mark_checked_in(reference=booking.reference, centre_id=offering.centre_id)


def test_urgent_booking_from_the_daily_reserve(rctx, kit, make):
    centre = make.centre()
    offering = make.offering(
        centre, make.service(code="passport.renew", high_demand=True), urgent_reserve_per_day=2
    )
    citizens = kit.citizens(3)
    day = clock.now().date() + dt.timedelta(days=1)
    # An urgent pass bypasses the quotas: the citizen may already hold a regular passport booking.
    _confirmed(kit, offering, hours_ahead=30, citizen=citizens[0])
    first = services.create_urgent_booking(
        account_id=citizens[0], centre_id=centre.id, service_code="passport.renew", local_date=day
    )
    services.create_urgent_booking(
        account_id=citizens[1], centre_id=centre.id, service_code="passport.renew", local_date=day
    )
    db.session.commit()
    with pytest.raises(UrgentReserveExhausted) as exhausted:
        services.create_urgent_booking(
            account_id=citizens[2], centre_id=centre.id, service_code="passport.renew", local_date=day
        )
    assert exhausted.value.code == "urgent_reserve_exhausted" and exhausted.value.status == 409
    db.session.rollback()
    assert first.kind == "urgent" and first.status == "confirmed" and first.slot_id is None
    assert db.session.scalar(select(UrgentReserveUsage.used)) == 2

    # Any time on its day, at its centre.
    start_of_day = dt.datetime.combine(day, dt.time(0, 5), tzinfo=dt.timezone(dt.timedelta(hours=3)))
    clock.travel_to(start_of_day - dt.timedelta(minutes=10))
    with pytest.raises(CheckInWindow):
        services.mark_checked_in(reference=first.reference, centre_id=centre.id)
    clock.travel_to(start_of_day + dt.timedelta(hours=10))
    checked = services.mark_checked_in(reference=first.reference, centre_id=centre.id)
    assert checked.kind == "urgent" and checked.slot_start is None


def test_urgent_reserve_race(kit, make):
    centre = make.centre()
    offering = make.offering(centre, make.service(), urgent_reserve_per_day=3)
    citizens = kit.citizens(20)
    day = clock.now().date() + dt.timedelta(days=2)

    def urgent(citizen):
        booking = services.create_urgent_booking(
            account_id=citizen, centre_id=centre.id, service_code=offering.service_code, local_date=day
        )
        db.session.commit()
        return booking.reference

    results = kit.race(urgent, citizens, workers=20)
    assert len([r for r in results if isinstance(r, str)]) == 3
    assert {r.code for r in results if not isinstance(r, str)} == {"urgent_reserve_exhausted"}
    assert kit.call(lambda: db.session.scalar(select(UrgentReserveUsage.used))) == 3


def test_confirmed_bookings_starting_for_reminders(rctx, kit):
    offering = kit.offering()
    soon, slot = _confirmed(kit, offering, hours_ahead=24)
    _confirmed(kit, offering, hours_ahead=50)
    held_slot, other = kit.slot(offering, hours_ahead=24.2), kit.citizen_id()
    services.hold_slot(account_id=other, slot_id=held_slot.id)
    visits = services.confirmed_bookings_starting(
        start=clock.now() + dt.timedelta(hours=23), end=clock.now() + dt.timedelta(hours=25)
    )
    assert [v.reference for v in visits] == [soon.reference]
    assert visits[0].timezone == "Asia/Amman" and visits[0].slot_start == slot.start


def test_mark_no_shows_leaves_checked_in_bookings_alone(rctx, kit):
    offering = kit.offering()
    came, slot = _confirmed(kit, offering, hours_ahead=2)
    missed, _ = _confirmed(kit, offering, hours_ahead=2.1)
    clock.travel_to(slot.start - dt.timedelta(minutes=5))
    services.mark_checked_in(reference=came.reference, centre_id=offering.centre_id)
    db.session.commit()
    clock.travel_to(slot.start + dt.timedelta(hours=2))
    from booking.tasks import mark_no_shows

    assert mark_no_shows() == 1
    assert mark_no_shows() == 0
    db.session.expire_all()
    assert db.session.get(Booking, came.id).status == "checked_in"
    assert db.session.get(Booking, missed.id).status == "no_show"
