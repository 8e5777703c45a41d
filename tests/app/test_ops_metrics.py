"""/metrics counts 429s by the limit that tripped, and scheduled job runs by outcome with their durations."""

from app.jobs import run_job
from tests.metrics import figure, scrape


def test_429s_are_counted_by_limit(make_app):
    app = make_app(RATELIMIT_LOGIN_PER_ADDRESS="2 per minute")
    client = app.test_client()
    body = {"national_id": "1234567890", "password": "wrong-password"}
    statuses = [client.post("/api/v1/auth/login", json=body).status_code for _ in range(3)]
    assert statuses[-1] == 429
    text = scrape(client)
    limited = [line for line in text.splitlines() if line.startswith("sanad_rate_limited_total{")]
    assert limited and all(float(line.rsplit(" ", 1)[1]) >= 1 for line in limited)
    assert figure(text, "sanad_refusals_total", code="rate_limited", status="429") >= 1


def ok_job() -> int:
    return 3


def broken_job() -> int:
    raise RuntimeError("boom")


def test_job_runs_and_failures_are_counted(app, client):
    before = scrape(client)
    assert run_job(app, "test-ok", "tests.app.test_ops_metrics:ok_job") == 3
    assert run_job(app, "test-broken", "tests.app.test_ops_metrics:broken_job") is None
    after = scrape(client)
    ok = ("sanad_job_runs_total", {"job": "test-ok", "outcome": "ok"})
    failed = ("sanad_job_runs_total", {"job": "test-broken", "outcome": "failed"})
    assert figure(after, ok[0], **ok[1]) - figure(before, ok[0], **ok[1]) == 1
    assert figure(after, failed[0], **failed[1]) - figure(before, failed[0], **failed[1]) == 1
    assert figure(after, "sanad_job_seconds_count", job="test-ok") >= 1
