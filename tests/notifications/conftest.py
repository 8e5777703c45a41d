"""Fixtures of the notifications tests: the loopback Google stand-in and an FCM sender aimed at it."""

from __future__ import annotations

import uuid

import pytest

from notifications.fcm import FcmSender
from tests.standins import GoogleStandin

PROJECT_ID = "sanad-test"


@pytest.fixture(scope="module")
def shared_google():
    with GoogleStandin(project_id=PROJECT_ID) as standin:
        yield standin


@pytest.fixture(scope="module")
def shared_sender(shared_google, tmp_path_factory):
    # The real firebase-admin SDK; only its FCM URL and token_uri point at the stand-in.
    sender = FcmSender(
        credentials_path=str(shared_google.service_account_file(tmp_path_factory.mktemp("fcm"))),
        app_name=f"notifications-test-{uuid.uuid4().hex}",
        http_timeout=5,
        fcm_url=shared_google.fcm_url,
    )
    yield sender
    sender.close()


@pytest.fixture
def google(shared_google):
    shared_google.reset()
    yield shared_google
    assert shared_google.responder_errors == []


@pytest.fixture
def fcm(app, google, shared_sender):
    """The test's app sends pushes with the real SDK to the stand-in (as with FCM_CREDENTIALS set)."""
    app.extensions["fcm_sender"] = shared_sender
    return google


@pytest.fixture
def register(client):
    """POST /me/devices for an account's headers; returns the response."""

    def register(headers, token, device_id="install-1", platform="android"):
        body = {"token": token, "platform": platform, "device_id": device_id}
        response = client.post("/api/v1/me/devices", json=body, headers=headers)
        assert response.status_code in (200, 201), response.get_json()
        return response

    return register
