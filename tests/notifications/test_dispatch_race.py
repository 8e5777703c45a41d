"""Two dispatchers at once never send the same outbox row.

Rows are claimed with SKIP LOCKED on PostgreSQL; SQLite serialises the claims with BEGIN IMMEDIATE.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app.extensions import db
from notifications.models import PushDelivery
from notifications.services import notify_citizen, register_device
from notifications.tasks import dispatch_outbox


def test_two_dispatchers_at_once_send_every_row_exactly_once(make_app, make, fcm, shared_sender):
    app = make_app(PUSH_BATCH_SIZE="3")
    app.extensions["fcm_sender"] = shared_sender
    tokens = []
    for i in range(24):
        citizen = make.citizen(language="ar" if i % 2 else "en")
        tokens.append(f"race-token-{i}")
        make.call(register_device, account_id=citizen.id, token=tokens[-1], platform="android", device_id="d")

        def queue(account_id=citizen.id, i=i):
            notify_citizen(
                account_id=account_id, kind="turn_near", params={"number": f"A-{i:03d}", "ahead": 2}
            )
            db.session.commit()

        make.call(queue)
    barrier = threading.Barrier(2)

    def dispatcher(_):
        barrier.wait(10)
        with app.app_context():
            try:
                return dispatch_outbox()
            finally:
                db.session.remove()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(dispatcher, range(2)))

    sent = Counter(request.body["message"]["token"] for request in fcm.fcm_requests)
    assert sent == Counter({token: 1 for token in tokens})
    statuses = make.call(lambda: db.session.scalars(select(PushDelivery.status)).all())
    assert statuses == ["sent"] * 24
