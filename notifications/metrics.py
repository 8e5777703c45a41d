"""Push figures for /metrics: outcomes counted as batches finish, the outbox read when it is scraped."""

from __future__ import annotations

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from notifications.models import PushDelivery

PUSH_OUTCOMES = Counter(
    "sanad_push_outcomes_total",
    "Push deliveries by outcome: sent, retry (pending again), dropped (token gone), failed (given up)",
    ["outcome"],
)


def count_push_outcomes(counts: dict[str, int]) -> None:
    """Count one batch's outcomes (statuses as stored; `pending` means it will be retried)."""
    for status, n in counts.items():
        PUSH_OUTCOMES.labels("retry" if status == "pending" else status).inc(n)


def outbox_figures():
    """`sanad_push_outbox_pending` and `sanad_push_outbox_oldest_seconds` (0 when empty)."""
    count, oldest = db.session.execute(
        select(func.count(), func.min(PushDelivery.created_at)).where(PushDelivery.status == "pending")
    ).one()
    pending = GaugeMetricFamily("sanad_push_outbox_pending", "Push deliveries waiting to be sent")
    pending.add_metric([], count or 0)
    yield pending
    age = GaugeMetricFamily("sanad_push_outbox_oldest_seconds", "Age of the oldest waiting push delivery")
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=clock.now().tzinfo)
    age.add_metric([], max(0.0, (clock.now() - oldest).total_seconds()) if oldest else 0.0)
    yield age
