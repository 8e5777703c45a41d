"""Every error leaves in the SPEC §5 envelope, localised, with the headers HTTP promises."""

import logging

import pytest
from flask import Blueprint


def test_validation_errors_name_the_fields_and_refuse_unknown_ones(client):
    r = client.post(
        "/api/v1/auth/login", json={"national_id": "12", "extra": True}, headers={"Accept-Language": "en"}
    )
    assert r.status_code == 422
    error = r.json["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "Some fields are missing or invalid."
    assert set(error["details"]["fields"]) == {"national_id", "password", "extra"}
    assert error["details"]["fields"]["extra"] == ["Unknown field."]


def test_unknown_query_parameters_are_refused(client):
    r = client.get("/api/v1/centres", query_string={"colour": "blue"})
    assert r.status_code == 422 and "colour" in r.json["error"]["details"]["fields"]["query"]


def test_messages_follow_accept_language(client):
    ar = client.get("/api/v1/centres/nowhere", headers={"Accept-Language": "ar"})
    en = client.get("/api/v1/centres/nowhere", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert ar.status_code == en.status_code == 404
    assert ar.json["error"]["message"] == "غير موجود."
    assert en.json["error"]["message"] == "Not found."


def test_405_keeps_allow_header(client):
    r = client.delete("/api/v1/services")
    assert r.status_code == 405
    assert r.json["error"]["code"] == "method_not_allowed"
    assert "GET" in r.headers["Allow"]


def test_unreadable_json_is_an_envelope(client):
    r = client.post("/api/v1/auth/login", data="{not json", content_type="application/json")
    assert r.status_code in (400, 422) and set(r.json) == {"error"}


def test_429_has_retry_after(make_app):
    app = make_app(RATELIMIT_LOGIN_PER_ADDRESS="2 per minute")
    client = app.test_client()
    statuses = [
        client.post("/api/v1/auth/login", json={"national_id": "1234567890", "password": "x"}).status_code
        for _ in range(3)
    ]
    assert statuses[:2] == [401, 401] and statuses[2] == 429
    r = client.post(
        "/api/v1/auth/login",
        json={"national_id": "1234567890", "password": "x"},
        headers={"Accept-Language": "ar"},
    )
    assert r.status_code == 429 and r.json["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    assert r.json["error"]["message"] == "طلبات كثيرة جدًا. يرجى الانتظار ثم المحاولة مرة أخرى."


def test_500_hides_the_traceback_and_logs_it_with_the_request_id(make_app, caplog):
    app = make_app()
    boom = Blueprint("boom", __name__)

    @boom.get("/boom")
    def explode():
        raise RuntimeError("secret internals")

    app.register_blueprint(boom)
    with caplog.at_level(logging.ERROR):
        r = app.test_client().get("/boom", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 500
    assert "secret" not in r.get_data(as_text=True)
    assert r.json["error"]["code"] == "internal_error"
    assert r.json["error"]["details"]["request_id"] == "req-123"
    assert r.headers["X-Request-ID"] == "req-123"
    record = next(rec for rec in caplog.records if rec.getMessage() == "unhandled error")
    assert record.request_id == "req-123" and record.exc_info


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/admin/kiosks"])
def test_malformed_authorization_header_is_401(client, path):
    r = client.get(path, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_token"


def test_nul_characters_are_refused_not_crashed_on(client):
    r = client.post("/api/v1/auth/login", json={"national_id": "1234567890", "password": "a\x00b"})
    assert r.status_code == 422 and r.json["error"]["code"] == "validation_error"
    r = client.get("/api/v1/centres/abc%00def")
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request"
    r = client.get("/api/v1/centres", headers={"X-Device-Id": "a\x00"})
    assert r.status_code == 400
