"""POST/GET/DELETE /me/devices: registering, refreshing and moving FCM tokens."""

from __future__ import annotations

from notifications.models import Device
from tests.authz import assert_hidden_from, assert_needs_auth


def _devices(client, headers):
    response = client.get("/api/v1/me/devices", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def test_register_then_refresh_the_same_install(client, make, register):
    citizen = make.citizen()
    headers = make.headers(citizen)

    created = register(headers, "token-1")
    again = register(headers, "token-1", platform="ios")
    refreshed = register(headers, "token-2")  # the app got a new token on the same install

    assert created.status_code == 201
    assert again.status_code == 200 and again.get_json()["platform"] == "ios"
    assert refreshed.status_code == 200
    assert refreshed.get_json()["id"] == created.get_json()["id"]
    [device] = _devices(client, headers)
    assert device["token"] == "token-2" and device["device_id"] == "install-1"


def test_a_token_belongs_to_one_account_at_a_time(client, make, register):
    first, second = make.citizen(), make.citizen()
    first_headers, second_headers = make.headers(first), make.headers(second)
    old = register(first_headers, "shared-phone-token").get_json()

    moved = register(second_headers, "shared-phone-token", device_id="install-9")

    assert moved.status_code == 201
    assert _devices(client, first_headers) == []
    assert [d["token"] for d in _devices(client, second_headers)] == ["shared-phone-token"]
    assert make.fresh(Device, old["id"]) is None or make.fresh(Device, old["id"]).account_id == second.id


def test_two_installs_of_one_account(client, make, register):
    citizen = make.citizen()
    headers = make.headers(citizen)
    register(headers, "phone", device_id="phone")
    register(headers, "tablet", device_id="tablet", platform="ios")

    assert sorted(d["token"] for d in _devices(client, headers)) == ["phone", "tablet"]


def test_delete_own_device_and_not_another_citizens(client, make, register):
    owner, other = make.citizen(), make.citizen()
    owner_headers = make.headers(owner)
    device_id = register(owner_headers, "owner-token").get_json()["id"]

    assert_hidden_from(client, [("DELETE", f"/api/v1/me/devices/{device_id}")], make.headers(other))
    assert make.fresh(Device, device_id) is not None

    assert client.delete(f"/api/v1/me/devices/{device_id}", headers=owner_headers).status_code == 204
    assert make.fresh(Device, device_id) is None
    assert client.delete(f"/api/v1/me/devices/{device_id}", headers=owner_headers).status_code == 404


def test_device_input_is_validated(client, make):
    headers = make.headers(make.citizen())
    for body in (
        {"token": "t", "platform": "windows", "device_id": "d"},
        {"token": "", "platform": "android", "device_id": "d"},
        {"token": "t", "platform": "android"},
        {"token": "t", "platform": "android", "device_id": "d", "extra": 1},
    ):
        response = client.post("/api/v1/me/devices", json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["code"] == "validation_error"


def test_devices_need_a_signed_in_citizen(client, make):
    assert_needs_auth(
        client,
        [
            ("POST", "/api/v1/me/devices", {"token": "t", "platform": "android", "device_id": "d"}),
            ("GET", "/api/v1/me/devices"),
            ("DELETE", "/api/v1/me/devices/1"),
            ("GET", "/api/v1/me/notifications"),
            ("POST", "/api/v1/me/notifications/1/read"),
        ],
    )


def test_the_same_token_registered_by_many_accounts_at_once_ends_with_one_owner(app, make):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import select

    from app.extensions import db
    from notifications.services import register_device

    accounts = [make.citizen().id for _ in range(8)]
    barrier = threading.Barrier(len(accounts))

    def register(account_id):
        barrier.wait(10)
        with app.app_context():
            try:
                device, created = register_device(
                    account_id=account_id, token="contested", platform="android", device_id=f"d{account_id}"
                )
                return device.account_id, created
            finally:
                db.session.remove()

    with ThreadPoolExecutor(len(accounts)) as pool:
        results = list(pool.map(register, accounts))

    assert all(created for _, created in results)
    rows = make.call(lambda: db.session.execute(select(Device.account_id, Device.token)).all())
    assert len(rows) == 1 and rows[0].token == "contested" and rows[0].account_id in accounts


def test_dispatching_inside_a_request_is_refused(app):
    import pytest

    from notifications.tasks import dispatch_outbox

    with app.test_request_context(), pytest.raises(RuntimeError):
        dispatch_outbox()
