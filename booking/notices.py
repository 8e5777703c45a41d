"""What booking tells the citizen about their booking, queued in the command's own transaction."""

from __future__ import annotations

from typing import Any

from booking.models import Booking


def booking_notice(
    booking: Booking, kind: str, *, dedupe: str, language: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The row of a notification to the booking's citizen (in `language`, the account's, when the caller
    has it in hand), for a statement that writes it with the booking's change."""
    from notifications.services import notification_values

    return notification_values(
        account_id=booking.account_id,
        kind=kind,
        params=_params(booking, extra),
        dedupe_key=dedupe,
        language=language,
    )


def new_booking_notice(
    values: dict[str, Any], reference: str, kind: str, *, language: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The row of a notification about a booking not written yet (`values`, its columns): without the
    booking's id in its routing data, nor a dedupe key (the statement that writes both adds them)."""
    from notifications.services import notification_values

    params = {
        "reference": reference,
        "centre_id": values["centre_id"],
        "service_code": values["service_code"],
        **extra,
    }
    return notification_values(account_id=values["account_id"], kind=kind, params=params, language=language)


def notify_booking(
    booking: Booking, kind: str, *, dedupe: str, language: str | None = None, **extra: Any
) -> None:
    """Queue a notification to the booking's citizen in the current transaction (in `language`, the
    account's, when the caller has it in hand)."""
    from notifications.services import notify_citizen

    notify_citizen(
        account_id=booking.account_id,
        kind=kind,
        params=_params(booking, extra),
        dedupe_key=dedupe,
        language=language,
    )


def _params(booking: Booking, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference": booking.reference,
        "booking_id": booking.id,
        "centre_id": booking.centre_id,
        "service_code": booking.service_code,
        **extra,
    }
