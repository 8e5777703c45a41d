"""Refusals of the booking domain, each with its stable code (documented by app/contract.py) and a message."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    local_date_text,
    local_datetime_text,
    local_time_text,
    translated,
)


class SlotNotFound(NotFound):
    code = "slot_not_found"
    message = _l("This slot does not exist.")


class BookingNotFound(NotFound):
    code = "not_found"
    message = _l("Booking not found.")


class SlotFull(Conflict):
    code = "slot_full"
    message = _l("This slot has just been taken. Please choose another time.")

    def render_message(self) -> str:
        available, wanted = self.details.get("available"), self.details.get("seats")
        if not available or not wanted or wanted <= 1:
            return translated(self.message)
        return str(
            _l(
                "This slot has only %(available)s places left for the %(seats)s people of your booking. "
                "Please choose another time.",
                available=available,
                seats=wanted,
            )
        )


class HoldExpired(AppError):
    status = 410
    code = "hold_expired"
    message = _l("Your hold on this slot has expired. Please choose a slot again.")


class OutsideHorizon(AppError):
    status = 422
    code = "outside_horizon"
    message = _l("This slot cannot be booked: it is too soon or too far ahead.")

    def render_message(self) -> str:
        if self.details.get("latest"):
            return str(
                _l(
                    "You can book up to %(latest)s; choose an earlier day.",
                    latest=local_date_text(self.details["latest"]),
                )
            )
        if self.details.get("earliest"):
            return str(
                _l(
                    "This is too soon to book; the earliest is %(earliest)s.",
                    earliest=local_datetime_text(self.details["earliest"]),
                )
            )
        return str(self.message)


class InvalidBookingState(Conflict):
    code = "invalid_booking_state"
    message = _l("This booking cannot be changed in its current state.")


class SameSlot(Conflict):
    code = "same_slot"
    message = _l("The booking is already in this slot.")


class WrongService(AppError):
    status = 422
    code = "wrong_service"
    message = _l("The new slot is for a different service.")


class AccountNotVerified(Forbidden):
    code = "account_not_verified"
    message = _l("Verify your phone number before booking.")


# Anti-abuse refusals: each one is recorded as an abuse event.


class ActiveBookingExists(Conflict):
    code = "active_booking_exists"
    message = _l("You already have an active booking for this kind of service.")

    def render_message(self) -> str:
        name = self.details.get("applicant_name")
        if not name:
            return str(self.message)
        return str(_l("%(name)s already has an active booking for this kind of service.", name=name))


class NotADependent(Forbidden):
    code = "not_a_dependent"
    message = _l("You can book only for yourself and the children you are a guardian of.")


class QuotaExceeded(Conflict):
    code = "quota_exceeded"
    message = _l("You have reached the maximum number of active bookings.")


class HoldLimit(Conflict):
    code = "hold_limit"
    message = _l("You are already holding a slot. Confirm or cancel it first.")


class BookingSuspended(Forbidden):
    code = "booking_suspended"
    message = _l("Booking is suspended for your account for now.")

    def render_message(self) -> str:
        until = self.details.get("until")
        if not until:
            return str(self.message)
        return str(
            _l("Booking is suspended for your account until %(until)s.", until=local_datetime_text(until))
        )


class NotEligible(Forbidden):
    code = "not_eligible"
    message = _l(
        "You are not eligible to book this service. If your need is urgent, you can file an urgent request."
    )

    def render_message(self) -> str:
        reason = self.details.get("reason")
        if reason == "passport_not_expiring" and self.details.get("renewal_opens_on"):
            return str(
                _l(
                    "Your passport is not due for renewal yet: you can book a renewal from %(date)s. "
                    "If your need is urgent, you can file an urgent request.",
                    date=local_date_text(self.details["renewal_opens_on"]),
                )
            )
        if reason == "no_passport":
            return str(_l("You hold no passport to renew: book a first passport instead."))
        if reason == "valid_passport_held":
            return str(_l("You already hold a valid passport: book a renewal when it is due instead."))
        return str(self.message)


class DeviceLimit(Forbidden):
    code = "device_limit"
    message = _l("Too many accounts have booked from this device.")


class AppCheckFailed(Unauthorized):
    code = "app_check_failed"
    message = _l("This request must come from the official app.")


class AppCheckUnavailable(AppError):
    status = 503
    code = "app_check_unavailable"
    message = _l("The app could not be verified right now. Please try again shortly.")


# Check-in and urgent passes (called by the queue and urgent domains).


class CheckInWindow(Conflict):
    code = "check_in_window"
    message = _l("Check-in is not open for this booking now.")

    def render_message(self) -> str:
        start, end = self.details.get("window_start"), self.details.get("window_end")
        if not (start and end):
            return str(self.message)
        return str(
            _l(
                "Check-in for this booking is open only from %(start)s to %(end)s on %(day)s.",
                start=local_time_text(start),
                end=local_time_text(end),
                day=local_date_text(start),
            )
        )


class BookingNotConfirmed(Conflict):
    code = "booking_not_confirmed"
    message = _l("Only a confirmed booking can be checked in.")


class UrgentReserveExhausted(Conflict):
    code = "urgent_reserve_exhausted"
    message = _l("No urgent places are left on that day.")


# Release day (booking/draws.py): draws and waitlists.


class DrawNotFound(NotFound):
    code = "not_found"
    message = _l("Draw not found.")


class InDraw(Conflict):
    code = "in_draw"
    message = _l("Places on this day are given by a draw, not first come. Enter the draw instead.")


class DrawClosed(Conflict):
    code = "draw_closed"
    message = _l("Entries to this draw are closed.")


class DrawNotOpenYet(Conflict):
    code = "draw_not_open"
    message = _l("Entries to this draw are not open yet. The details say when they open.")


class AlreadyEntered(Conflict):
    code = "already_entered"
    message = _l("This person has already entered this draw.")


class EntryNotFound(NotFound):
    code = "not_found"
    message = _l("You have no entry in this draw.")


class DrawNotDrawn(Conflict):
    code = "draw_not_drawn"
    message = _l("This draw has not been drawn yet.")


class DrawInProgress(Conflict):
    code = "draw_in_progress"
    message = _l("This draw is being drawn right now. Try again in a moment.")


class InvalidDrawState(Conflict):
    code = "invalid_draw_state"
    message = _l("This draw cannot be changed in its current state.")


class DrawAllocation(Conflict):
    code = "draw_allocation"
    message = _l("Places for this service here are given by draws: there is no waiting list.")


class AlreadyWaitlisted(Conflict):
    code = "already_waitlisted"
    message = _l("You are already on a waiting list for this kind of service.")


class WaitlistNotFound(NotFound):
    code = "not_found"
    message = _l("Waiting list place not found.")
