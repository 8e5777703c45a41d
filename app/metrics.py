"""The business figures an operator watches, beside the HTTP ones (`/metrics`, prometheus-client).

Counted where the shell sees them: a hold is a 201 from `POST /bookings`, a refusal is every error
envelope by code, a 429 by the limit that tripped; replays of an `Idempotency-Key` are not counted
again. Figures read from the stores (queue length per centre, the push outbox) are asked of each domain
at scrape time (`STORE_FIGURES`), so the shell imports no domain.
"""

from __future__ import annotations

import importlib
import logging

from flask import Response, request
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

HOLDS = Counter("sanad_holds_total", "Seats held (POST /bookings answered 201)")
CONFIRMS = Counter("sanad_confirms_total", "Holds confirmed")
REFUSALS = Counter("sanad_refusals_total", "Error answers by status and code", ["status", "code"])
RATE_LIMITED = Counter("sanad_rate_limited_total", "429 answers by the limit that tripped", ["limit"])
TICKETS_ISSUED = Counter("sanad_tickets_issued_total", "Queue tickets issued, by how", ["via"])
TICKETS_CALLED = Counter("sanad_tickets_called_total", "Tickets called to a counter (call-next)")
SSE_STREAMS = Gauge(
    "sanad_sse_streams_open", "Open server-sent-event streams (hall displays)", multiprocess_mode="livesum"
)
JOB_RUNS = Counter("sanad_job_runs_total", "Scheduled job runs by outcome", ["job", "outcome"])
JOB_SECONDS = Histogram(
    "sanad_job_seconds",
    "Scheduled job run time",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
)

# (endpoint, status) of a success -> what it counts.
_SUCCESSES = {
    ("booking.hold", 201): HOLDS,
    ("booking.confirm", 200): CONFIRMS,
    ("ticketing.issue_ticket", 201): TICKETS_ISSUED.labels("ticket"),
    ("ticketing.check_in_at_centre", 201): TICKETS_ISSUED.labels("check_in_at_centre"),
    ("ticketing.check_in_in_app", 201): TICKETS_ISSUED.labels("check_in_in_app"),
    ("ticketing.issue_urgent_ticket", 201): TICKETS_ISSUED.labels("urgent"),
    ("ticketing.call_next", 200): TICKETS_CALLED,
}
# Domain functions answering metric families read from the database, at scrape time.
STORE_FIGURES = ("ticketing.metrics:queue_figures", "notifications.metrics:outbox_figures")


def count_business_answer(response: Response) -> None:
    """Count a success the operator watches (called after every request)."""
    counter = _SUCCESSES.get((request.endpoint, response.status_code))
    if counter is not None and response.headers.get("Idempotent-Replayed") != "true":
        counter.inc()


def count_refusal(status: int, code: str) -> None:
    """Count an error answer by status and code."""
    REFUSALS.labels(str(status), code).inc()


def count_rate_limited(limit: str) -> None:
    """Count a 429 by the limit (its scope, or its text) that tripped."""
    RATE_LIMITED.labels(limit or "unknown").inc()


class StoreFigures(Collector):
    """Gauges read from the database when /metrics is scraped (each domain's own query)."""

    def collect(self):
        for dotted in STORE_FIGURES:
            module_name, _, func = dotted.partition(":")
            try:
                yield from getattr(importlib.import_module(module_name), func)()
            except Exception:  # a figure that cannot be read must not hide the others
                log.exception("metric figures failed: %s", dotted)
                failed = GaugeMetricFamily(
                    "sanad_figures_failed", "A group of store figures could not be read", labels=["group"]
                )
                failed.add_metric([dotted], 1)
                yield failed
