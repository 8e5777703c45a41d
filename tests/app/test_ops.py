"""Health, readiness, metrics and JSON logs."""

import json
import logging

from app.logs import JsonFormatter


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_reports_an_unreachable_redis(make_app, dead_redis_url):
    app = make_app(REDIS_URL=dead_redis_url)
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["checks"]["redis"].startswith("error")


def test_metrics_count_requests_by_route(client):
    client.get("/api/v1/services")
    text = client.get("/metrics").get_data(as_text=True)
    assert "sanad_http_requests_total" in text
    assert 'endpoint="/api/v1/services"' in text


def test_every_response_carries_a_request_id(client):
    r = client.get("/healthz")
    assert len(r.headers["X-Request-ID"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "abc"}).headers["X-Request-ID"] == "abc"


def test_json_log_lines_carry_the_request_id(app):
    formatter = JsonFormatter()
    with app.test_request_context("/x"):
        from flask import g

        g.request_id = "rid-1"
        record = logging.LogRecord("sanad", logging.INFO, __file__, 1, "hello %s", ("مرحبا",), None)
        line = json.loads(formatter.format(record))
    assert line["request_id"] == "rid-1" and line["message"] == "hello مرحبا" and line["level"] == "info"


def test_docs_and_openapi_are_served_locally(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    page = client.get("/docs")
    assert page.status_code == 200 and b"/docs/assets/swagger-ui-bundle.js" in page.data
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_every_api_route_is_documented(app):
    spec = app.test_client().get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<string:{arg}>", f"{{{arg}}}").replace(f"<int:{arg}>", f"{{{arg}}}")
            path = path.replace(f"<{arg}>", f"{{{arg}}}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)


def test_every_operation_documents_the_outage_answer(client):
    spec = client.get("/api/v1/openapi.json").json
    operations = [
        (path, method, operation)
        for path, ops in spec["paths"].items()
        for method, operation in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 50
    for path, method, operation in operations:
        outage = operation["responses"].get("503")
        assert outage is not None, (path, method)
        content = outage["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}, (path, method)
        assert "unavailable" in content["examples"], (path, method)
        assert "Retry-After" in outage["description"], (path, method)


def test_auth_and_idempotency_are_documented(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["paths"]["/api/v1/me"]["get"]["security"] == [{"bearerAuth": []}]
    hold = spec["paths"]["/api/v1/bookings"]["post"]
    assert hold["security"] == [{"bearerAuth": []}]
    assert "Idempotency-Key" in {p["name"] for p in hold["parameters"]}
    assert "security" not in spec["paths"]["/api/v1/services"]["get"]
