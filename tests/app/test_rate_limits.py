"""Flask-Limiter keeps its counters in Redis, and falls back to per-process limits when Redis is down."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from app.accounts.sms import HttpSmsSender


def _login(client, national_id="1234567890"):
    return client.post("/api/v1/auth/login", json={"national_id": national_id, "password": "wrong-pass-1"})


def test_limits_are_counted_in_redis(make_app):
    app = make_app(RATELIMIT_LOGIN="2 per minute")
    client = app.test_client()
    with app.app_context():
        from app.redis_client import get_redis

        get_redis().flushdb()
    assert [_login(client).status_code for _ in range(3)] == [401, 401, 429]
    with app.app_context():
        keys = get_redis().keys("*sanad-swc*")
    assert keys, "the limiter should store its windows in the app's Redis"


def test_limits_hold_per_process_when_redis_is_down(make_app, dead_redis_url):
    app = make_app(REDIS_URL=dead_redis_url, RATELIMIT_LOGIN="2 per minute")
    client = app.test_client()
    statuses = [_login(client).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    assert int(_login(client).headers["Retry-After"]) > 0


def test_login_limit_is_also_per_national_id(make_app):
    app = make_app(RATELIMIT_LOGIN="2 per minute")
    client = app.test_client()
    assert [_login(client).status_code for _ in range(3)][-1] == 429
    # A different national id from another address is limited separately from this one.
    other = client.post(
        "/api/v1/auth/login",
        json={"national_id": "1234567899", "password": "wrong-pass-1"},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert other.status_code == 401


def test_http_sms_sender_posts_to_the_gateway():
    received = []

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Authorization"], json.loads(body)))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        HttpSmsSender(f"http://127.0.0.1:{server.server_port}/send", "gw-token").send(
            "+962791234567", "رمز 123456"
        )
    finally:
        server.shutdown()
    assert received == [("Bearer gw-token", {"to": "+962791234567", "text": "رمز 123456"})]
