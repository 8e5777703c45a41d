"""/metrics shows the push outbox: how many deliveries wait and how long the oldest has."""

import datetime as dt

from app import clock
from app.extensions import db
from notifications.models import Notification, PushDelivery
from tests.metrics import figure, scrape


def test_outbox_backlog_and_oldest_age(client, make):
    account = make.citizen()
    assert figure(scrape(client), "sanad_push_outbox_pending") == 0

    def queue_two():
        notification = Notification(
            account_id=account.id, kind="booking_confirmed", language="en", title="t", body="b", data={}
        )
        db.session.add(notification)
        db.session.flush()
        ten_minutes_ago = clock.now() - dt.timedelta(minutes=10)
        db.session.add(
            PushDelivery(notification_id=notification.id, device_id=None, created_at=ten_minutes_ago)
        )
        db.session.add(PushDelivery(notification_id=notification.id, device_id=None, status="sent"))
        db.session.commit()

    make.call(queue_two)
    text = scrape(client)
    assert figure(text, "sanad_push_outbox_pending") == 1
    assert 590 <= figure(text, "sanad_push_outbox_oldest_seconds") <= 3600
