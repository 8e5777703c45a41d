"""notifications.fcm with the real firebase-admin SDK against the loopback Google stand-in."""

import importlib
import importlib.util
import time
import uuid
import warnings

import firebase_admin
import pytest
from firebase_admin import messaging

from notifications.fcm import FcmSender, PushMessage, SendOutcome, SendResult
from tests.standins import (
    GoogleStandin,
    internal,
    invalid_argument,
    quota_exceeded,
    sender_id_mismatch,
    unavailable,
    unregistered,
)

PROJECT_ID = "sanad-test"
APNS_HEADERS = {"apns-priority": "10", "apns-push-type": "alert"}
APNS_PAYLOAD = {"aps": {"sound": "default"}}


@pytest.fixture(scope="module")
def shared_google():
    with GoogleStandin(project_id=PROJECT_ID) as standin:
        yield standin


@pytest.fixture
def google(shared_google):
    shared_google.reset()
    yield shared_google
    assert shared_google.responder_errors == []


def _new_sender(google, directory, **overrides):
    kwargs = {
        "credentials_path": str(google.service_account_file(directory)),
        "app_name": f"fcm-test-{uuid.uuid4().hex}",
        "http_timeout": 5,
        "fcm_url": google.fcm_url,
    }
    kwargs.update(overrides)
    return FcmSender(**kwargs)


def _close(sender):
    sender.close()
    with pytest.raises(ValueError):  # no leaked firebase App
        firebase_admin.get_app(sender.app.name)


@pytest.fixture(scope="module")
def shared_sender(shared_google, tmp_path_factory):
    # Creating a messaging service costs ~0.5 s (the SDK builds httpx SSL contexts), so the tests
    # that do not depend on a fresh App/token share one sender.
    sender = _new_sender(shared_google, tmp_path_factory.mktemp("fcm"))
    yield sender
    _close(sender)


@pytest.fixture
def sender(google, shared_sender):
    return shared_sender


@pytest.fixture
def make_sender(google, tmp_path):
    """Fresh senders (own App, own token cache), closed after the test."""
    senders = []

    def make(**overrides):
        sender = _new_sender(google, tmp_path, **overrides)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        _close(sender)


def push(token, **overrides):
    fields = {"token": token, "title": "Booking confirmed", "body": "See you tomorrow", "data": {}}
    fields.update(overrides)
    return PushMessage(**fields)


# -- what reaches FCM --------------------------------------------------------------------------------


def test_arabic_message_reaches_fcm_exactly(google, sender):
    message = PushMessage(
        token="device-token-ar",
        title="تم تأكيد حجزك",
        body="موعدك في مركز الخدمة غداً الساعة ٩:٣٠",
        data={"booking_id": "42", "kind": "booking_confirmed", "centre": "مركز الرياض"},
        collapse_key="booking-42",
    )

    results = sender.send_batch([message])

    assert results == [SendResult(SendOutcome.SENT, message_id=f"projects/{PROJECT_ID}/messages/1")]
    [request] = google.fcm_requests
    assert request.path == f"/v1/projects/{PROJECT_ID}/messages:send"
    assert request.body == {
        "message": {
            "token": "device-token-ar",
            "notification": {"title": "تم تأكيد حجزك", "body": "موعدك في مركز الخدمة غداً الساعة ٩:٣٠"},
            "data": {"booking_id": "42", "kind": "booking_confirmed", "centre": "مركز الرياض"},
            "android": {"priority": "high", "collapse_key": "booking-42"},
            "apns": {"headers": APNS_HEADERS, "payload": APNS_PAYLOAD},
        }
    }
    assert request.headers["authorization"] == "Bearer standin-token"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-goog-api-format-version"] == "2"


def test_english_message_without_data_or_collapse_key(google, sender):
    results = sender.send_batch(
        [push("device-token-en", title="Your booking is confirmed", body="Tomorrow 9:30")]
    )

    assert [r.outcome for r in results] == [SendOutcome.SENT]
    [request] = google.fcm_requests
    assert request.body == {
        "message": {
            "token": "device-token-en",
            "notification": {"title": "Your booking is confirmed", "body": "Tomorrow 9:30"},
            "android": {"priority": "high"},
            "apns": {"headers": APNS_HEADERS, "payload": APNS_PAYLOAD},
        }
    }
    assert request.headers["authorization"] == "Bearer standin-token"


def test_sending_emits_no_deprecation_warning(sender):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sender.send_batch([push("device-token")])

    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


def test_access_token_is_fetched_once_even_for_a_parallel_first_batch(google, make_sender):
    sender = make_sender()

    sender.send_batch([push(f"t{i}") for i in range(8)])  # send_each: 8 threads at once
    sender.send_batch([push("again")])

    assert len(google.token_requests) == 1
    assert len(google.fcm_requests) == 9
    assert {r.headers["authorization"] for r in google.fcm_requests} == {"Bearer standin-token"}


@pytest.mark.skipif(
    not hasattr(importlib.import_module("google.auth"), "_regional_access_boundary_utils")
    and importlib.util.find_spec("google.auth._regional_access_boundary_utils") is None,
    reason="this google-auth has no regional access boundary lookup",
)
def test_google_auth_background_lookup_hits_the_standin_not_google(google, make_sender):
    # google-auth >= 2.6x looks up the service account's "allowed locations" at iamcredentials.googleapis.com
    # in a background thread; the stand-in redirects it so no request (or token) leaves the machine.
    make_sender().send_batch([push("a")])

    deadline = time.monotonic() + 5
    while google.rab_lookups == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert google.rab_lookups == 1


def test_fcm_url_override_does_not_leak_to_other_apps(sender):
    assert messaging._MessagingService.FCM_URL == "https://fcm.googleapis.com/v1/projects/{0}/messages:send"


def test_empty_batch_sends_nothing(google, sender):
    assert sender.send_batch([]) == []
    assert google.fcm_requests == []


# -- error classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "outcome", "error_code"),
    [
        (unregistered, SendOutcome.DROP_TOKEN, "UNREGISTERED"),
        (sender_id_mismatch, SendOutcome.DROP_TOKEN, "SENDER_ID_MISMATCH"),
        (quota_exceeded, SendOutcome.RETRY, "QUOTA_EXCEEDED"),
        (invalid_argument, SendOutcome.FAILED, "INVALID_ARGUMENT"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_fcm_4xx_errors(google, sender, reply, outcome, error_code):
    google.fcm_responder = lambda body: reply()

    [result] = sender.send_batch([push("device-token")])

    assert result.outcome == outcome
    assert result.error_code == error_code
    assert result.message_id is None
    assert result.detail
    assert len(google.fcm_requests) == 1  # 4xx are not retried by the SDK


def test_fcm_5xx_are_retried_by_the_sdk_then_reported_as_retry(google, sender):
    # The SDK retries 500/503 four times with exponential backoff (~7 s); send_each runs both
    # messages in parallel, so both 5xx cases share one test.
    replies = {"token-503": unavailable, "token-500": internal}
    google.fcm_responder = lambda body: replies[body["message"]["token"]]()

    results = sender.send_batch([push("token-503"), push("token-500")])

    assert [(r.outcome, r.error_code) for r in results] == [
        (SendOutcome.RETRY, "UNAVAILABLE"),
        (SendOutcome.RETRY, "INTERNAL"),
    ]
    assert len(google.fcm_requests_for("token-503")) >= 2
    assert len(google.fcm_requests_for("token-500")) >= 2


def test_timeout_is_reported_as_retry(google, make_sender):
    sender = make_sender(http_timeout=0.3)

    def slow(body):
        time.sleep(1.0)
        return google.default_fcm_responder(body)

    google.fcm_responder = slow

    [result] = sender.send_batch([push("device-token")])

    assert result.outcome == SendOutcome.RETRY
    # urllib3 retries a read timeout once, then requests reports the exhausted retry as a
    # ConnectionError, which the SDK maps to UnavailableError (not DeadlineExceededError).
    assert result.error_code == "UNAVAILABLE"
    assert len(google.fcm_requests) == 2


def test_mixed_batch_keeps_per_message_results_in_order(google, sender):
    google.fcm_responder = lambda body: (
        unregistered() if body["message"]["token"] == "stale" else google.default_fcm_responder(body)
    )

    results = sender.send_batch([push("first"), push("stale"), push("third")])

    assert [r.outcome for r in results] == [SendOutcome.SENT, SendOutcome.DROP_TOKEN, SendOutcome.SENT]
    assert results[1].error_code == "UNREGISTERED"
    assert results[0].message_id and results[2].message_id
    assert results[0].message_id != results[2].message_id
    assert len(google.fcm_requests) == 3


def test_locally_invalid_message_fails_alone(google, sender):
    bad = push("bad", data={"seats": 2})  # FCM data values must be strings

    results = sender.send_batch([push("ok-1"), bad, push("", title="no token"), push("ok-2")])

    assert [(r.outcome, r.error_code) for r in results] == [
        (SendOutcome.SENT, None),
        (SendOutcome.FAILED, "INVALID_MESSAGE"),
        (SendOutcome.FAILED, "INVALID_MESSAGE"),
        (SendOutcome.SENT, None),
    ]
    assert sorted(r.body["message"]["token"] for r in google.fcm_requests) == ["ok-1", "ok-2"]


def test_large_batches_are_sent_in_chunks_in_order(google, sender, monkeypatch):
    monkeypatch.setattr(sender, "MAX_BATCH", 2)
    calls = []
    real_send_each = messaging.send_each
    monkeypatch.setattr(
        messaging,
        "send_each",
        lambda msgs, app=None: calls.append(len(msgs)) or real_send_each(msgs, app=app),
    )
    google.fcm_responder = lambda body: (
        unregistered() if body["message"]["token"] == "t3" else google.default_fcm_responder(body)
    )

    results = sender.send_batch([push(f"t{i}") for i in range(5)])

    assert calls == [2, 2, 1]
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 3 + [SendOutcome.DROP_TOKEN, SendOutcome.SENT]


def test_rejected_service_account_fails_the_batch_without_sending(google, make_sender):
    sender = make_sender()
    google.token_responder = lambda form: (400, {"error": "invalid_grant", "error_description": "Bad key"})

    results = sender.send_batch([push("a"), push("b")])

    assert [(r.outcome, r.error_code) for r in results] == [(SendOutcome.FAILED, "AUTH")] * 2
    assert len(google.token_requests) == 1
    assert google.fcm_requests == []


# -- App lifecycle -----------------------------------------------------------------------------------


def test_close_deletes_the_app_it_created_and_is_idempotent(make_sender):
    sender = make_sender()
    name = sender.app.name

    sender.close()
    sender.close()

    with pytest.raises(ValueError):
        firebase_admin.get_app(name)
    with pytest.raises(RuntimeError):
        sender.send_batch([push("a")])


def test_existing_app_is_reused_and_left_to_its_owner(google, make_sender):
    owner = make_sender()
    guest = make_sender(app_name=owner.app.name)

    assert guest.app is owner.app
    guest.close()
    assert firebase_admin.get_app(owner.app.name) is owner.app
    assert [r.outcome for r in owner.send_batch([push("a")])] == [SendOutcome.SENT]
