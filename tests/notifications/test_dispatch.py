"""The dispatcher with the real firebase-admin SDK against the loopback FCM stand-in, end to end.

What reaches FCM is asserted byte for byte (as JSON); each FCM answer is followed through the
dispatcher into the database: the outbox row's status, attempts and next attempt, and the device.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from app import clock
from app.extensions import db
from notifications.models import Device, Notification, PushDelivery
from notifications.services import notify_citizen
from notifications.tasks import _fan_out, dispatch_outbox
from tests.standins import internal, invalid_argument, quota_exceeded, unavailable, unregistered

PROJECT_ID = "sanad-test"
APNS = {
    "headers": {"apns-priority": "10", "apns-push-type": "alert"},
    "payload": {"aps": {"sound": "default"}},
}
START = "2026-12-01T07:30:00+00:00"  # 10:30 in Amman


def _notify(make, account, kind="booking_confirmed", **params):
    def run():
        notify_citizen(account_id=account.id, kind=kind, params=params, data={"source": "test"})
        db.session.commit()

    make.call(run)


def _deliveries(make):
    return make.call(lambda: db.session.scalars(select(PushDelivery).order_by(PushDelivery.id)).all())


def _by_token(make):
    def run():
        rows = db.session.execute(
            select(PushDelivery, Device.token).outerjoin(Device, Device.id == PushDelivery.device_id)
        ).all()
        return {token: delivery for delivery, token in rows}

    return make.call(run)


def _setting(make, centre_name=("مركز المقابلين", "Muqabalain Centre")):
    centre = make.centre(id="amman-test", name_ar=centre_name[0], name_en=centre_name[1])
    service = make.service(code="passport.renew", name_ar="تجديد جواز السفر", name_en="Passport renewal")
    return centre, service


def test_arabic_and_english_pushes_reach_fcm_exactly(make, register, fcm):
    centre, service = _setting(make)
    arabic, english = make.citizen(language="ar"), make.citizen(language="en")
    register(make.headers(arabic), "token-ar", platform="android")
    register(make.headers(english), "token-en", platform="ios")
    for account in (arabic, english):
        _notify(
            make, account, reference="SB-7K2Q", centre_id=centre.id, service_code=service.code, start=START
        )

    assert make.call(dispatch_outbox) == 2 + 2  # two notifications fanned out, two pushes sent

    bodies = {r.body["message"]["token"]: r.body for r in fcm.fcm_requests}
    assert {r.path for r in fcm.fcm_requests} == {f"/v1/projects/{PROJECT_ID}/messages:send"}
    ar_id, en_id = make.call(
        lambda: db.session.scalars(select(Notification.id).order_by(Notification.id)).all()
    )
    data = {
        "kind": "booking_confirmed",
        "reference": "SB-7K2Q",
        "centre_id": "amman-test",
        "service_code": "passport.renew",
        "source": "test",
    }
    assert bodies["token-ar"] == {
        "message": {
            "token": "token-ar",
            "notification": {
                "title": "تم تأكيد الموعد",
                "body": "تم تأكيد موعدك SB-7K2Q لخدمة تجديد جواز السفر في مركز المقابلين "
                "بتاريخ 2026-12-01 10:30.",
            },
            "data": {**data, "notification_id": str(ar_id)},
            "android": {"priority": "high"},
            "apns": APNS,
        }
    }
    assert bodies["token-en"] == {
        "message": {
            "token": "token-en",
            "notification": {
                "title": "Appointment confirmed",
                "body": "Your appointment SB-7K2Q for Passport renewal at Muqabalain Centre is confirmed for "
                "2026-12-01 10:30.",
            },
            "data": {**data, "notification_id": str(en_id)},
            "android": {"priority": "high"},
            "apns": APNS,
        }
    }
    rows = _by_token(make)
    assert {t: (d.status, d.attempts) for t, d in rows.items()} == {
        "token-ar": ("sent", 1),
        "token-en": ("sent", 1),
    }
    assert rows["token-ar"].message_id.startswith(f"projects/{PROJECT_ID}/messages/")

    assert make.call(dispatch_outbox) == 0  # nothing is sent twice
    assert len(fcm.fcm_requests) == 2


def test_each_fcm_error_through_the_dispatcher_and_the_database(make, register, fcm):
    tokens = {
        "ok": None,
        "gone": unregistered,
        "quota": quota_exceeded,
        "overloaded": unavailable,  # 503: the SDK retries it itself first
        "broken": internal,
        "proxy": lambda: (502, {"error": {"code": 502, "message": "Bad Gateway", "status": "UNAVAILABLE"}}),
        "bad": invalid_argument,
    }
    fcm.fcm_responder = lambda body: (tokens[body["message"]["token"]] or fcm.default_fcm_responder)(
        *(() if tokens[body["message"]["token"]] else (body,))
    )
    citizen = make.citizen(language="en")
    headers = make.headers(citizen)
    for token in tokens:
        register(headers, token, device_id=f"install-{token}")
    _notify(make, citizen, reference="SB-1")
    before = clock.now()

    make.call(dispatch_outbox)

    rows = _by_token(make)
    gone = [d for d in _deliveries(make) if d.device_id is None]
    assert rows["ok"].status == "sent"
    # unregistered -> the device token is deleted, the row is kept as dropped
    assert "gone" not in rows and len(gone) == 1 and gone[0].status == "dropped"
    assert "UNREGISTERED" in gone[0].last_error
    assert make.call(lambda: db.session.scalar(select(Device).where(Device.token == "gone"))) is None
    # quota and 5xx -> pending again, attempt counted, next attempt pushed back by the backoff
    for token in ("quota", "overloaded", "broken", "proxy"):
        row = rows[token]
        assert (row.status, row.attempts, row.claim_token) == ("pending", 1, None), token
        assert (
            before + dt.timedelta(seconds=15) <= row.next_attempt_at <= clock.now() + dt.timedelta(seconds=30)
        )
    assert "QUOTA_EXCEEDED" in rows["quota"].last_error
    # invalid argument about our payload -> failed for good
    assert (rows["bad"].status, rows["bad"].attempts) == ("failed", 1)
    assert "INVALID_ARGUMENT" in rows["bad"].last_error

    # Not due yet: nothing is sent again.
    sent_so_far = len(fcm.fcm_requests)
    assert make.call(dispatch_outbox) == 0
    assert len(fcm.fcm_requests) == sent_so_far

    # Later, FCM has recovered: the retried rows go out, the failed one is not retried.
    fcm.fcm_responder = fcm.default_fcm_responder
    clock.shift(dt.timedelta(minutes=2))
    assert make.call(dispatch_outbox) == 4
    rows = _by_token(make)
    assert {
        t: (rows[t].status, rows[t].attempts) for t in ("quota", "overloaded", "broken", "proxy", "bad")
    } == {
        "quota": ("sent", 2),
        "overloaded": ("sent", 2),
        "broken": ("sent", 2),
        "proxy": ("sent", 2),
        "bad": ("failed", 1),
    }
    assert not fcm.fcm_requests_for("bad")[1:]


def test_retries_back_off_exponentially_then_give_up(make_app, make, register, fcm, shared_sender):
    app = make_app(PUSH_MAX_ATTEMPTS="3", PUSH_BACKOFF_BASE_SECONDS="60", PUSH_BACKOFF_CAP_SECONDS="100")
    app.extensions["fcm_sender"] = shared_sender
    fcm.fcm_responder = lambda body: quota_exceeded()
    citizen = make.citizen()
    register(make.headers(citizen), "busy")
    _notify(make, citizen)
    delays = []
    for _ in range(3):
        with app.app_context():
            now = clock.now()
            dispatch_outbox()
            row = db.session.scalar(select(PushDelivery))
            delays.append((row.status, row.attempts, (row.next_attempt_at - now).total_seconds()))
        clock.shift(dt.timedelta(seconds=101))

    (s1, a1, d1), (s2, a2, d2), (s3, a3, _) = delays
    assert (s1, a1) == ("pending", 1) and 30 <= d1 <= 61  # base 60: between 30 and 60 s
    assert (s2, a2) == ("pending", 2) and 50 <= d2 <= 101  # 120 capped at 100: between 50 and 100 s
    assert (s3, a3) == ("failed", 3)
    assert len(fcm.fcm_requests) == 3


def test_a_token_moved_to_another_account_never_gets_the_old_owners_push(make, register, fcm):
    first, second = make.citizen(), make.citizen()
    register(make.headers(first), "shared")
    _notify(make, first, reference="SB-FIRST")
    # Fanned out (a row for first's device), then the phone changes hands before the row is sent.
    make.call(lambda: _fan_out(push_enabled=True))
    register(make.headers(second), "shared", device_id="other-install")

    make.call(dispatch_outbox)

    assert fcm.fcm_requests == []
    [row] = _deliveries(make)
    assert row.status == "dropped"


def test_without_fcm_credentials_messages_go_to_the_inbox_and_the_log(make, client, caplog):
    citizen = make.citizen(language="en")
    _notify(make, citizen, reference="SB-LOG")

    with caplog.at_level(logging.INFO, logger="sanad.notifications"):
        assert make.call(dispatch_outbox) == 1
        assert make.call(dispatch_outbox) == 0

    [line] = [r.fields for r in caplog.records if r.name == "sanad.notifications"]
    assert line["event"] == "notification.logged"
    assert line["kind"] == "booking_confirmed" and line["language"] == "en"
    assert line["title"] == "Appointment confirmed" and "SB-LOG" in line["body"]
    assert _deliveries(make) == []
    inbox = client.get("/api/v1/me/notifications", headers=make.headers(citizen)).get_json()
    assert [n["data"]["reference"] for n in inbox] == ["SB-LOG"]


def test_a_stale_notification_is_kept_in_the_inbox_but_not_pushed(make, register, fcm):
    citizen = make.citizen()
    register(make.headers(citizen), "token")
    _notify(make, citizen, kind="turn_near", number="A-007", ahead=2)
    clock.shift(dt.timedelta(hours=13))

    make.call(dispatch_outbox)

    assert fcm.fcm_requests == []
    assert _deliveries(make) == []
