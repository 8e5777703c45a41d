"""The booking domain: slots, holds, bookings, anti-abuse and urgent passes."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Regenerate an offering's future free slots whenever its schedule changes."""
    from app.catalogue.services import schedule_changed

    schedule_changed.connect(_on_schedule_changed, weak=False)


def _on_schedule_changed(centre_id: str, offering_id: int | None = None, **_: object) -> None:
    # Runs in the app context of whoever changed the schedule, after their commit.
    from booking.slot_regeneration import regenerate_slots

    if offering_id is not None:
        regenerate_slots(offering_id=offering_id)
    else:
        regenerate_slots(centre_id=centre_id)
