"""booking.app_check against the real firebase-admin SDK, with Google's JWKS served on loopback."""

import time
import uuid

import firebase_admin
import jwt
import pytest
from firebase_admin import app_check, credentials

from booking.app_check import AppCheckRejected, verify_app_check_token
from tests.standins import APP_CHECK_ISSUER_PREFIX, GoogleStandin, cached_rsa_key

PROJECT_ID = "sanad-test"
PROJECT_NUMBER = "123456789012"
APP_ID = "1:123456789012:android:0a1b2c3d4e5f6789"


@pytest.fixture(scope="module")
def shared_google():
    with GoogleStandin(project_id=PROJECT_ID, project_number=PROJECT_NUMBER) as standin:
        yield standin


@pytest.fixture
def google(shared_google):
    shared_google.reset()
    return shared_google


def _firebase_app(google, directory):
    return firebase_admin.initialize_app(
        credentials.Certificate(str(google.service_account_file(directory))),
        {"projectId": PROJECT_ID, "httpTimeout": 5},
        name=f"app-check-test-{uuid.uuid4().hex}",
    )


@pytest.fixture(scope="module")
def jwks_url(shared_google):
    # Private: the SDK builds its PyJWKClient from this class attribute when an App's App Check
    # service is created (first verify_token on that App), so patch it before any App verifies.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_check._AppCheckService, "_JWKS_URL", shared_google.jwks_url)
        yield shared_google.jwks_url


@pytest.fixture
def firebase_app(google, jwks_url, tmp_path):
    """A fresh App, hence a fresh JWKS cache."""
    app = _firebase_app(google, tmp_path)
    yield app
    firebase_admin.delete_app(app)


@pytest.fixture(scope="module")
def shared_app(shared_google, jwks_url, tmp_path_factory):
    """One App for the rejection cases (loading a service-account key costs ~0.2 s)."""
    app = _firebase_app(shared_google, tmp_path_factory.mktemp("app-check"))
    yield app
    firebase_admin.delete_app(app)


def test_valid_token_returns_claims(google, firebase_app):
    token = google.make_app_check_token(PROJECT_NUMBER, APP_ID)

    claims = verify_app_check_token(token, app=firebase_app)

    assert claims["sub"] == APP_ID
    assert claims["app_id"] == APP_ID
    assert claims["iss"] == f"{APP_CHECK_ISSUER_PREFIX}{PROJECT_NUMBER}"
    assert claims["aud"] == [f"projects/{PROJECT_NUMBER}", f"projects/{PROJECT_ID}"]


def test_key_set_is_fetched_once_and_cached(google, firebase_app):
    for _ in range(3):
        verify_app_check_token(google.make_app_check_token(PROJECT_NUMBER, APP_ID), app=firebase_app)

    assert google.jwks_fetches == 1


def _expired(google):
    now = int(time.time())
    return google.make_app_check_token(PROJECT_NUMBER, APP_ID, iat=now - 3700, exp=now - 100)


def _wrong_audience(google):
    return google.make_app_check_token(PROJECT_NUMBER, APP_ID, aud=["projects/999", "projects/other-project"])


def _audience_not_a_list(google):
    return google.make_app_check_token(PROJECT_NUMBER, APP_ID, aud=f"projects/{PROJECT_ID}")


def _wrong_issuer(google):
    return google.make_app_check_token(
        PROJECT_NUMBER, APP_ID, iss=f"https://securetoken.google.com/{PROJECT_ID}"
    )


def _issuer_of_another_project(google):
    # Accepted by the SDK (prefix check only); rejected by our iss/aud project-number check.
    return google.make_app_check_token(PROJECT_NUMBER, APP_ID, iss=f"{APP_CHECK_ISSUER_PREFIX}999999999999")


def _unknown_kid(google):
    return google.make_app_check_token(
        PROJECT_NUMBER, APP_ID, key=cached_rsa_key("other"), headers={"kid": "rotated-away"}
    )


def _known_kid_wrong_signature(google):
    return google.make_app_check_token(PROJECT_NUMBER, APP_ID, key=cached_rsa_key("other"))


def _no_kid(google):
    token = google.make_app_check_token(PROJECT_NUMBER, APP_ID)
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, google.app_check_key, algorithm="RS256", headers={"typ": "JWT"})


def _wrong_typ_header(google):
    return google.make_app_check_token(PROJECT_NUMBER, APP_ID, headers={"typ": "at+jwt"})


def _hs256(google):
    token = google.make_app_check_token(PROJECT_NUMBER, APP_ID)
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(
        claims,
        "a-shared-secret-of-32-bytes-or-more!",
        algorithm="HS256",
        headers={"kid": google.app_check_kid},
    )


def _missing_subject(google):
    return google.make_app_check_token(PROJECT_NUMBER, APP_ID, sub=None)


def _garbage(google):
    return "garbage"


def _header_ok_payload_not_json(google):
    return "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InN0YW5kaW4tYXBwLWNoZWNrLWtleSJ9.bm90IGpzb24.c2ln"


def _three_empty_looking_parts(google):
    return "a.b.c"


@pytest.mark.parametrize(
    "make_token",
    [
        _expired,
        _wrong_audience,
        _audience_not_a_list,
        _wrong_issuer,
        _issuer_of_another_project,
        _unknown_kid,
        _known_kid_wrong_signature,
        _no_kid,
        _wrong_typ_header,
        _hs256,
        _missing_subject,
        _garbage,
        _header_ok_payload_not_json,
        _three_empty_looking_parts,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_tokens_are_rejected_as_invalid(google, shared_app, make_token):
    with pytest.raises(AppCheckRejected) as info:
        verify_app_check_token(make_token(google), app=shared_app)

    assert info.value.reason == "invalid"


@pytest.mark.parametrize("token", [None, "", "   "])
def test_missing_token_is_rejected_without_contacting_google(google, shared_app, token):
    with pytest.raises(AppCheckRejected) as info:
        verify_app_check_token(token, app=shared_app)

    assert info.value.reason == "missing"
    assert str(info.value) == "missing"
    assert google.jwks_fetches == 0


def test_unreachable_key_set_is_reported_as_unavailable(google, firebase_app):
    google.jwks_status = 503

    with pytest.raises(AppCheckRejected) as info:
        verify_app_check_token(google.make_app_check_token(PROJECT_NUMBER, APP_ID), app=firebase_app)

    assert info.value.reason == "unavailable"
    assert google.jwks_fetches >= 1
