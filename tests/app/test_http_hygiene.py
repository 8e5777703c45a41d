"""Headers on every page and API answer, and the switches an operator has over /metrics and /docs."""

import pytest

API_ANSWERS = ["/api/v1/services", "/api/v1/centres/nowhere", "/healthz", "/api/v1/openapi.json", "/docs"]


@pytest.mark.parametrize("path", API_ANSWERS)
def test_browser_policies_on_every_answer(client, path):
    r = client.get(path)
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "Strict-Transport-Security" not in r.headers  # development/test: the TLS front end's job
    assert not r.headers.get("Server", "").startswith("Werkzeug")


def test_pages_have_no_inline_script(make, client):
    import re

    for path in ["/docs", "/staff/console", f"/centres/{make.centre().id}/display"]:
        html = client.get(path).get_data(as_text=True)
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
        assert scripts, path
        assert all("src=" in attrs and not body.strip() for attrs, body in scripts), path
        assert not re.search(r"\son[a-z]+=", html), path


@pytest.fixture
def production(dead_redis_url):
    """Production settings on the test database; a Redis that refuses (nothing here needs it)."""
    from tests.app.test_config import PRODUCTION

    return {**{k: v for k, v in PRODUCTION.items() if k != "DATABASE_URL"}, "REDIS_URL": dead_redis_url}


def test_hsts_only_in_production_over_https(make_app, production):
    app = make_app(**production)
    client = app.test_client()
    secure = client.get("/healthz", headers={"X-Forwarded-Proto": "https"}, base_url="https://localhost")
    assert "max-age=" in secure.headers["Strict-Transport-Security"]
    assert client.get("/healthz").status_code == 200  # plain HTTP is not redirected (the front end does TLS)


def test_tokens_are_never_cached(client, make):
    account = make.citizen()
    r = client.post("/api/v1/auth/login", json={"national_id": account.national_id, "password": "wrong"})
    assert r.headers["Cache-Control"] == "no-store"
    me = client.get("/api/v1/me", headers=make.headers(account))
    assert me.status_code == 200 and me.headers["Cache-Control"] == "no-store"


def test_a_401_names_the_bearer_scheme(client):
    anonymous = client.get("/api/v1/me")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == 'Bearer realm="sanad"'
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]


def test_no_retry_after_on_success(client):
    r = client.get("/api/v1/services")
    assert r.status_code == 200 and "Retry-After" not in r.headers


def test_root_and_docs_slash_lead_to_docs(client):
    for path in ("/", "/docs/"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].endswith("/docs")
    assert client.get("/docs").status_code == 200


def test_docs_can_be_switched_off(make_app):
    client = make_app(API_DOCS_ENABLED="false").test_client()
    assert client.get("/docs").status_code == 404
    assert client.get("/api/v1/openapi.json").status_code == 404
    assert client.get("/").status_code == 404
    assert client.get("/api/v1/services").status_code == 200


def test_metrics_need_the_token_when_one_is_set(make_app):
    client = make_app(METRICS_TOKEN="s3cret-metrics").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    assert ok.status_code == 200
    content_type = ok.headers["Content-Type"]
    assert content_type.count("charset") == 1 and content_type.startswith("text/plain")


def test_metrics_are_off_in_production_without_a_token(make_app, production):
    assert make_app(**production).test_client().get("/metrics").status_code == 404
    assert make_app().test_client().get("/metrics").status_code == 200  # development/test: open


def test_the_development_server_sends_no_server_banner(app):
    import threading

    import httpx
    from werkzeug.serving import make_server

    from app.devserver import QuietRequestHandler

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        r = httpx.get(f"http://127.0.0.1:{server.server_port}/healthz", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert r.status_code == 200 and "server" not in r.headers and r.headers["date"]
