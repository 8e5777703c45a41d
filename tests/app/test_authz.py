"""Roles: citizens stay out of staff and admin routes; admin routes are admin-only."""

import pytest

from tests.authz import assert_forbidden, assert_needs_auth

ADMIN_ROUTES = [
    (
        "POST",
        "/api/v1/admin/centres",
        {
            "id": "x-centre",
            "name_ar": "س",
            "name_en": "X",
            "city": "Amman",
            "kind": "one_stop",
            "timezone": "Asia/Amman",
        },
    ),
    ("POST", "/api/v1/admin/services", {"code": "x.y", "name_ar": "س", "name_en": "X", "ticket_prefix": "X"}),
    ("GET", "/api/v1/admin/kiosks"),
]


@pytest.fixture
def centre(make):
    return make.centre()


def test_admin_routes_need_auth(client):
    assert_needs_auth(client, ADMIN_ROUTES)


@pytest.mark.parametrize("role", ["citizen", "staff", "supervisor"])
def test_non_admins_are_forbidden_on_admin_routes(make, client, centre, role):
    account = make.citizen() if role == "citizen" else make.staff(centre, role=role)
    assert_forbidden(client, ADMIN_ROUTES, make.headers(account))


def test_kiosk_is_forbidden_on_admin_and_profile_routes(make, client, centre):
    kiosk = make.kiosk_headers(centre)
    assert_forbidden(client, [*ADMIN_ROUTES, ("GET", "/api/v1/me")], kiosk)


def test_revoked_kiosk_token_is_401(make, client, centre):
    admin = make.account("admin")
    created = client.post(
        "/api/v1/admin/kiosks", json={"centre_id": centre.id, "name": "hall"}, headers=make.headers(admin)
    )
    assert created.status_code == 201
    token = created.json["token"]
    assert (
        client.post(
            f"/api/v1/admin/kiosks/{created.json['id']}/revoke", headers=make.headers(admin)
        ).status_code
        == 200
    )
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
