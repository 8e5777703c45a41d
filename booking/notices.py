"""What booking tells the citizen about their booking, queued in the command's own transaction."""

from __future__ import annotations

from typing import Any

from booking.models import Booking


def notify_booking(
    booking: Booking, kind: str, *, dedupe: str, language: str | None = None, **extra: Any
) -> None:
    """Queue a notification to the booking's citizen in the current transaction (in `language`, the
    account's, when the caller has it in hand)."""
    from notifications.services import notify_citizen

    params: dict[str, Any] = {
        "reference": booking.reference,
        "booking_id": booking.id,
        "centre_id": booking.centre_id,
        "service_code": booking.service_code,
        **extra,
    }
    notify_citizen(
        account_id=booking.account_id, kind=kind, params=params, dedupe_key=dedupe, language=language
    )
