"""Flask-Limiter keeps its counters in Redis, and falls back to per-process limits when Redis is down."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from app.accounts.sms import HttpSmsSender


def _login(client, national_id="1234567890"):
    return client.post("/api/v1/auth/login", json={"national_id": national_id, "password": "wrong-pass-1"})


def test_limits_are_counted_in_redis(make_app):
    app = make_app(RATELIMIT_LOGIN_PER_ADDRESS="2 per minute")
    client = app.test_client()
    with app.app_context():
        from app.redis_client import get_redis

        get_redis().flushdb()
    assert [_login(client).status_code for _ in range(3)] == [401, 401, 429]
    with app.app_context():
        keys = get_redis().keys("*sanad-swc*")
    assert keys, "the limiter should store its windows in the app's Redis"


def test_limits_hold_per_process_when_redis_is_down(make_app, dead_redis_url):
    app = make_app(REDIS_URL=dead_redis_url, RATELIMIT_LOGIN_PER_ADDRESS="2 per minute")
    client = app.test_client()
    statuses = [_login(client).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    assert int(_login(client).headers["Retry-After"]) > 0


def test_login_limit_is_also_per_device(make_app):
    app = make_app(RATELIMIT_LOGIN="2 per minute")
    client = app.test_client()
    device = {"X-Device-Id": "phone-1"}
    statuses = [
        client.post(
            "/api/v1/auth/login",
            json={"national_id": f"123456789{n}", "password": "wrong-pass-1"},
            headers=device,
            environ_base={"REMOTE_ADDR": f"10.0.0.{n}"},
        ).status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]
    # Without a device id (a browser) the per-device limit does not count the address instead.
    assert [_login(client).status_code for _ in range(3)] == [401, 401, 401]


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
