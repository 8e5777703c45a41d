"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from sqlalchemy import text

from app.errors import NotFound, Unauthorized
from app.extensions import db
from app.metrics import StoreFigures, count_business_answer
from app.redis_client import get_redis

bp = Blueprint("ops", __name__)

REQUESTS = Counter("sanad_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "sanad_http_request_seconds",
    "HTTP request latency",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The database and Redis answer."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    finally:
        db.session.rollback()
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not_ready", checks=checks), (200 if ready else 503)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format (with several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR)."""
    import os

    _require_metrics_token()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry) + _store_figures(), content_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY) + _store_figures(), content_type=CONTENT_TYPE_LATEST)


def _store_figures() -> bytes:
    """The gauges read from the database now (queue lengths, the push outbox), in the same text format."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreFigures())
    try:
        return generate_latest(registry)
    finally:
        db.session.remove()


def _require_metrics_token() -> None:
    """With METRICS_TOKEN, only its bearer reads the figures; without it, only a non-production run does."""
    expected = current_app.config["METRICS_TOKEN"]
    if not expected:
        if current_app.config["SETTINGS"].is_production:
            raise NotFound()
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized()


def register_metrics(app: Flask) -> None:
    """Count and time every request by endpoint (not by raw path, to keep label cardinality small)."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(request.method, endpoint, response.status_code).inc()
        count_business_answer(response)
        started = g.get("metrics_started")
        if started is not None:
            LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response
