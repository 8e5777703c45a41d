"""Queue figures for /metrics, read when it is scraped: tickets waiting per centre."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app.extensions import db

from .models import Ticket


def queue_figures():
    """`sanad_queue_waiting{centre}`: tickets waiting to be called, per centre."""
    waiting = GaugeMetricFamily("sanad_queue_waiting", "Tickets waiting to be called", labels=["centre"])
    rows = db.session.execute(
        select(Ticket.centre_id, func.count()).where(Ticket.status == "waiting").group_by(Ticket.centre_id)
    ).all()
    for centre_id, count in rows:
        waiting.add_metric([centre_id], count)
    yield waiting
