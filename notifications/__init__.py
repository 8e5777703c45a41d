"""Notifications: devices, the inbox, the push outbox (FCM), reminders, and the scheduler's wiring."""


def init_app(app) -> None:
    """Register `flask scheduler` and start the in-process scheduler when SCHEDULER_ENABLED (make run)."""
    from app.scheduler import init_app as init_scheduler

    init_scheduler(app)
