"""GET /me/notifications and marking read: own notifications only, newest first, paginated."""

from __future__ import annotations

import json

from app.extensions import db
from notifications.services import notify_citizen
from tests.authz import assert_hidden_from


def _notify(make, account, n, kind="booking_cancelled"):
    def run():
        for i in range(n):
            notify_citizen(account_id=account.id, kind=kind, params={"reference": f"BK-{i:04d}"})
        db.session.commit()

    make.call(run)


def test_the_inbox_lists_own_notifications_newest_first_with_pages(client, make):
    citizen, other = make.citizen(language="en"), make.citizen()
    _notify(make, citizen, 5)
    _notify(make, other, 2)
    headers = make.headers(citizen)

    first = client.get("/api/v1/me/notifications?page_size=3", headers=headers)
    second = client.get("/api/v1/me/notifications?page_size=3&page=2", headers=headers)

    assert first.status_code == 200
    assert json.loads(first.headers["X-Pagination"])["total"] == 5
    references = [n["data"]["reference"] for n in first.get_json() + second.get_json()]
    assert references == ["BK-0004", "BK-0003", "BK-0002", "BK-0001", "BK-0000"]
    item = first.get_json()[0]
    assert set(item) == {"id", "kind", "language", "title", "body", "data", "created_at", "read_at"}
    assert item["kind"] == "booking_cancelled" and item["language"] == "en" and item["read_at"] is None
    assert item["title"] == "Appointment cancelled" and "BK-0004" in item["body"]
    assert item["created_at"].endswith("+00:00") or item["created_at"].endswith("Z")


def test_mark_read_is_idempotent_and_hidden_from_others(client, make):
    citizen, other = make.citizen(), make.citizen()
    _notify(make, citizen, 2)
    headers = make.headers(citizen)
    newest, older = client.get("/api/v1/me/notifications", headers=headers).get_json()

    assert_hidden_from(
        client, [("POST", f"/api/v1/me/notifications/{newest['id']}/read")], make.headers(other)
    )
    read = client.post(f"/api/v1/me/notifications/{newest['id']}/read", headers=headers)
    again = client.post(f"/api/v1/me/notifications/{newest['id']}/read", headers=headers)

    assert read.status_code == 200 and read.get_json()["read_at"] is not None
    assert again.get_json()["read_at"] == read.get_json()["read_at"]
    unread = client.get("/api/v1/me/notifications?unread=true", headers=headers).get_json()
    assert [n["id"] for n in unread] == [older["id"]]
    assert client.post("/api/v1/me/notifications/999999/read", headers=headers).status_code == 404


def test_read_all(client, make):
    citizen = make.citizen()
    _notify(make, citizen, 3)
    headers = make.headers(citizen)

    assert client.post("/api/v1/me/notifications/read-all", headers=headers).get_json() == {"updated": 3}
    assert client.post("/api/v1/me/notifications/read-all", headers=headers).get_json() == {"updated": 0}
    assert client.get("/api/v1/me/notifications?unread=true", headers=headers).get_json() == []


def test_staff_have_no_inbox(client, make):
    staff = make.staff(make.centre())
    assert client.get("/api/v1/me/notifications", headers=make.headers(staff)).status_code == 403
