"""Registration → code → verify → login → refresh → reuse revokes; bad tokens are refused."""

import datetime as dt
import re

import jwt
import pytest

from app import clock
from tests.factories import PASSWORD, auth_headers, create_account


def _sent_code(app) -> str:
    _phone, text = app.extensions["sms_sender"].sent[-1]
    return re.search(r"\d{6}", text).group(0)


@pytest.fixture
def person(make):
    return make.person(national_id="9000000001", date_of_birth=dt.date(1991, 5, 17))


def register(client, **overrides):
    body = {
        "national_id": "9000000001",
        "date_of_birth": "1991-05-17",
        "full_name": "Rania Haddad",
        "phone": "0791234567",
        "password": "Strong-pass-11",
        "language": "ar",
        "residence_country": "JO",
    }
    body.update(overrides)
    return client.post("/api/v1/auth/register", json=body, headers={"Accept-Language": "en"})


def test_full_flow_register_verify_login_refresh_and_reuse_revokes(app, client, person):
    r = register(client)
    assert r.status_code == 201, r.json
    assert r.json == {"national_id": "9000000001", "phone": "+962791234567", "status": "pending_verification"}
    phone, text = app.extensions["sms_sender"].sent[-1]
    assert phone == "+962791234567" and "سند" in text  # the account's language is Arabic

    r = client.post("/api/v1/auth/login", json={"national_id": "9000000001", "password": "Strong-pass-11"})
    assert r.status_code == 403 and r.json["error"]["code"] == "phone_not_verified"

    r = client.post("/api/v1/auth/verify-phone", json={"national_id": "9000000001", "code": _sent_code(app)})
    assert r.status_code == 200, r.json
    assert {"access_token", "refresh_token", "expires_in"} <= r.json.keys()

    r = client.post("/api/v1/auth/login", json={"national_id": "9000000001", "password": "Strong-pass-11"})
    assert r.status_code == 200
    tokens = r.json
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.json
    assert me.json["phone_verified"] is True and me.json["role"] == "citizen"

    first = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first.json["refresh_token"]})
    assert second.status_code == 200
    # Reusing the rotated first token: refused, and the whole family (including the newest) dies.
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json["error"]["code"] == "invalid_refresh_token"
    newest = client.post("/api/v1/auth/refresh", json={"refresh_token": second.json["refresh_token"]})
    assert newest.status_code == 401


def test_register_refuses_identity_mismatch_and_weak_password(client, person):
    r = register(client, date_of_birth="1991-05-18")
    assert r.status_code == 422 and r.json["error"]["code"] == "identity_mismatch"
    r = register(client, national_id="9000000099")
    assert r.status_code == 422 and r.json["error"]["code"] == "identity_mismatch"
    r = register(client, password="short1")
    assert r.status_code == 422 and r.json["error"]["code"] == "weak_password"
    r = register(client, phone="12")
    assert r.status_code == 422


def test_expatriate_phone_is_international(make, client):
    make.person(national_id="9000000002", date_of_birth=dt.date(1980, 2, 2), residence_country="US")
    r = register(
        client,
        national_id="9000000002",
        date_of_birth="1980-02-02",
        phone="(202) 555-0143",
        residence_country="US",
    )
    assert r.status_code == 201, r.json
    assert r.json["phone"] == "+12025550143"


def test_verified_account_cannot_be_registered_again(make, client):
    account = make.citizen(person=make.person(national_id="9000000003", date_of_birth=dt.date(1990, 1, 1)))
    r = register(client, national_id=account.national_id, date_of_birth="1990-01-01")
    assert r.status_code == 409 and r.json["error"]["code"] == "account_exists"


def test_code_attempts_are_limited_and_codes_expire(app, client, person):
    register(client)
    code = _sent_code(app)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(app.config["OTP_MAX_ATTEMPTS"]):
        r = client.post("/api/v1/auth/verify-phone", json={"national_id": "9000000001", "code": wrong})
        assert r.status_code == 422 and r.json["error"]["code"] == "code_invalid"
    # Attempts used up: even the right code is refused now.
    r = client.post("/api/v1/auth/verify-phone", json={"national_id": "9000000001", "code": code})
    assert r.status_code == 422
    client.post("/api/v1/auth/resend-code", json={"national_id": "9000000001"})
    fresh = _sent_code(app)
    clock.shift(dt.timedelta(seconds=app.config["OTP_TTL_SECONDS"] + 1))
    r = client.post("/api/v1/auth/verify-phone", json={"national_id": "9000000001", "code": fresh})
    assert r.status_code == 422 and r.json["error"]["code"] == "code_expired"


def test_login_lockout_after_repeated_failures(app, make, client):
    account = make.citizen()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        r = client.post(
            "/api/v1/auth/login", json={"national_id": account.national_id, "password": "wrong-pass-1"}
        )
        assert r.status_code == 401 and r.json["error"]["code"] == "invalid_credentials"
    r = client.post("/api/v1/auth/login", json={"national_id": account.national_id, "password": PASSWORD})
    assert r.status_code == 429 and r.json["error"]["code"] == "account_locked"
    assert int(r.headers["Retry-After"]) > 0
    clock.shift(dt.timedelta(minutes=app.config["LOGIN_LOCKOUT_MINUTES"], seconds=1))
    r = client.post("/api/v1/auth/login", json={"national_id": account.national_id, "password": PASSWORD})
    assert r.status_code == 200


def test_logout_ends_the_refresh_family(make, client):
    account = make.citizen()
    tokens = client.post(
        "/api/v1/auth/login", json={"national_id": account.national_id, "password": PASSWORD}
    ).json
    assert (
        client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    )
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


def _claims(app, **overrides):
    now = int(clock.now().timestamp())
    claims = {
        "iss": app.config["JWT_ISSUER"],
        "aud": app.config["JWT_AUDIENCE"],
        "sub": "1",
        "iat": now,
        "exp": now + 600,
        "role": "citizen",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda app, key: jwt.encode(_claims(app), None, algorithm="none"), id="alg-none"),
        pytest.param(
            lambda app, key: jwt.encode(_claims(app), "x" * 40, algorithm="HS256", headers={"kid": "dev1"}),
            id="wrong-signature",
        ),
        pytest.param(
            lambda app, key: jwt.encode(
                _claims(app, aud="someone-else"), key, algorithm="HS256", headers={"kid": "dev1"}
            ),
            id="wrong-audience",
        ),
        pytest.param(
            lambda app, key: jwt.encode(
                _claims(app, iss="elsewhere"), key, algorithm="HS256", headers={"kid": "dev1"}
            ),
            id="wrong-issuer",
        ),
        pytest.param(
            lambda app, key: jwt.encode(
                _claims(app, exp=None), key, algorithm="HS256", headers={"kid": "dev1"}
            ),
            id="no-exp",
        ),
        pytest.param(
            lambda app, key: jwt.encode(
                _claims(app, exp=int(clock.now().timestamp()) - 1),
                key,
                algorithm="HS256",
                headers={"kid": "dev1"},
            ),
            id="expired",
        ),
        pytest.param(
            lambda app, key: jwt.encode(_claims(app), key, algorithm="HS256", headers={"kid": "old"}),
            id="unknown-kid",
        ),
        pytest.param(
            lambda app, key: jwt.encode(
                _claims(app, role="root"), key, algorithm="HS256", headers={"kid": "dev1"}
            ),
            id="unknown-role",
        ),
        pytest.param(lambda app, key: "not.a.jwt", id="garbage"),
    ],
)
def test_bad_access_tokens_are_401(app, make, client, make_token):
    make.citizen()
    token = make_token(app, app.config["JWT_KEYS"]["dev1"])
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_token"


def test_key_rotation_accepts_old_kid_while_listed(make_app, migrated_database):
    old = make_app(JWT_KEYS="k1:" + "a" * 40)
    with old.app_context():
        from app.extensions import db

        account = create_account()
        headers = auth_headers(account)
        db.session.remove()
    rotated = make_app(JWT_KEYS="k2:" + "b" * 40 + ",k1:" + "a" * 40, JWT_ACTIVE_KID="k2")
    assert rotated.test_client().get("/api/v1/me", headers=headers).status_code == 200
    retired = make_app(JWT_KEYS="k2:" + "b" * 40)
    assert retired.test_client().get("/api/v1/me", headers=headers).status_code == 401


def test_missing_token_is_401_with_localised_message(client):
    r = client.get("/api/v1/me", headers={"Accept-Language": "ar"})
    assert r.status_code == 401
    assert r.json["error"] == {"code": "unauthorized", "message": "سجّل الدخول للمتابعة.", "details": {}}
    r = client.get("/api/v1/me", headers={"Accept-Language": "en"})
    assert r.json["error"]["message"] == "Sign in to continue."


def test_profile_language_can_change(make, client):
    account = make.citizen()
    r = client.patch("/api/v1/me", json={"language": "ar"}, headers=make.headers(account))
    assert r.status_code == 200 and r.json["language"] == "ar"
    r = client.patch("/api/v1/me", json={"language": "fr"}, headers=make.headers(account))
    assert r.status_code == 422
