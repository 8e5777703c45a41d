"""Scheduled jobs of the booking domain; each is idempotent and safe if two schedulers run it at once."""

from __future__ import annotations

from booking import draws, services


def generate_slots() -> int:
    """Keep every active offering's slots filled up to the longest horizon; returns slots added."""
    return services.regenerate_slots()


def expire_holds() -> int:
    """Free the seats of expired holds and of cancellations past their release delay; returns how many."""
    return services.release_due_seats()


def mark_no_shows() -> int:
    """Confirmed bookings not checked in by slot end + grace become no-shows (and may suspend)."""
    return services.mark_no_shows()


def run_due_draws() -> int:
    """Draw every draw whose entries have closed (resumes one that died half-way); returns how many."""
    return draws.run_due_draws()
