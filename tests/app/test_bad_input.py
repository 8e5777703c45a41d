"""Bad input is a 422 naming the field, in the caller's language, and nothing is written."""

import pytest
from sqlalchemy import func, select

from booking.models import Booking

HUGE = 99999999999999999999999999


def _bookings(app) -> int:
    with app.app_context():
        from app.extensions import db

        return db.session.scalar(select(func.count()).select_from(Booking))


@pytest.mark.parametrize("slot_id", [2**31, HUGE, -(2**31) - 1, 0])
def test_out_of_range_slot_ids_are_422_on_hold_and_reschedule(app, client, make, slot_id):
    headers = make.headers(make.citizen())
    r = client.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=headers)
    assert r.status_code == 422, r.json
    assert list(r.json["error"]["details"]["fields"]) == ["slot_id"]
    r = client.post("/api/v1/bookings/SND-AAAA-AAAA/reschedule", json={"slot_id": slot_id}, headers=headers)
    assert r.status_code == 422 and list(r.json["error"]["details"]["fields"]) == ["slot_id"]
    assert _bookings(app) == 0


@pytest.mark.parametrize("slot_id", [5.5, 5.0, "5", True])
def test_integer_fields_take_whole_json_numbers_only(app, client, make, slot_id):
    headers = {**make.headers(make.citizen()), "Accept-Language": "en"}
    r = client.post("/api/v1/bookings", json={"slot_id": slot_id}, headers=headers)
    assert r.status_code == 422, r.json
    assert r.json["error"]["details"]["fields"]["slot_id"] == ["Not a valid integer."]
    assert _bookings(app) == 0


def test_every_integer_field_is_documented_with_its_bounds(client):
    spec = client.get("/api/v1/openapi.json").json
    hold = spec["components"]["schemas"]["Hold"]["properties"]["slot_id"]
    assert hold["minimum"] == 1 and hold["maximum"] == 2**31 - 1


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _post_raw(client, path, text, headers=None):
    return client.post(path, data=text, content_type="application/json", headers=headers or {})


def test_deep_nesting_on_login_is_422_before_parsing(client):
    body = f'{{"national_id": {_nested(500)}, "password": "x"}}'
    assert len(body) < 2600
    r = _post_raw(client, "/api/v1/auth/login", body)
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    assert list(r.json["error"]["details"]["fields"]) == ["national_id"]


def test_deep_nesting_on_bookings_is_422(app, client, make):
    headers = make.headers(make.citizen())
    r = _post_raw(client, "/api/v1/bookings", _nested(1000), headers)
    assert r.status_code == 422 and list(r.json["error"]["details"]["fields"]) == ["_schema"]
    r = _post_raw(client, "/api/v1/bookings", f'{{"slot_id": 1, "x": {_nested(1000)}}}', headers)
    assert r.status_code == 422 and list(r.json["error"]["details"]["fields"]) == ["x"]
    assert _bookings(app) == 0


def test_nesting_inside_strings_does_not_count(client):
    r = client.post("/api/v1/auth/login", json={"national_id": "[" * 600, "password": "{" * 100})
    assert r.status_code == 422
    assert list(r.json["error"]["details"]["fields"]) == ["national_id"]  # the 10-digit rule, not depth
    assert r.json["error"]["details"]["fields"]["national_id"] != ["Nested more than 16 levels deep."]


def test_nul_byte_is_reported_under_its_field_beside_the_other_errors(client):
    r = client.post(
        "/api/v1/auth/register",
        json={"national_id": "12", "full_name": "a\x00b", "phone": "0790000000", "password": "x"},
        headers={"Accept-Language": "en"},
    )
    assert r.status_code == 422
    fields = r.json["error"]["details"]["fields"]
    assert fields["full_name"] == ["Text must not contain NUL characters."]
    assert "national_id" in fields and "date_of_birth" in fields
    assert "_schema" not in fields


def test_patch_me_without_a_body_is_422(client, make):
    headers = make.headers(make.citizen())
    for kwargs in ({}, {"json": {}}):
        r = client.patch("/api/v1/me", headers=headers, **kwargs)
        assert r.status_code == 422, r.json
        assert list(r.json["error"]["details"]["fields"]) == ["language"]
    assert client.patch("/api/v1/me", json={"language": "en"}, headers=headers).status_code == 200


def test_field_errors_are_translated_under_accept_language_ar(client):
    body = {"national_id": "12345", "date_of_birth": "no", "full_name": "x", "phone": "1", "password": "p"}
    r = client.post("/api/v1/auth/register", json={**body, "extra": 1}, headers={"Accept-Language": "ar"})
    fields = r.json["error"]["details"]["fields"]
    assert fields["date_of_birth"] == ["تاريخ غير صالح."]
    assert fields["national_id"] == ["الرقم الوطني من 10 أرقام."]
    assert fields["extra"] == ["حقل غير معروف."]
    assert fields["full_name"] == ["يجب أن يكون الطول بين 2 و 200."]
    r = client.post("/api/v1/auth/register", json=body, headers={"Accept-Language": "en"})
    assert r.json["error"]["details"]["fields"]["date_of_birth"] == ["Not a valid date."]
