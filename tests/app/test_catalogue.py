"""The public catalogue and the admin's management of it."""

import json

import pytest


@pytest.fixture
def admin_headers(make):
    return make.headers(make.account("admin"))


def test_public_lists_filter_and_paginate(make, client):
    passport = make.service(code="passport.renew", ticket_prefix="P", high_demand=True)
    tax = make.service(code="gam.property_tax", ticket_prefix="T")
    amman = make.centre(id="amman-one", city="Amman")
    irbid = make.centre(id="irbid-one", city="Irbid")
    make.offering(amman, passport)
    make.offering(irbid, tax)

    r = client.get("/api/v1/services", query_string={"page_size": 1})
    assert r.status_code == 200 and len(r.json) == 1
    assert json.loads(r.headers["X-Pagination"])["total"] == 2
    assert {"code", "name_ar", "name_en", "group", "ticket_prefix"} <= set(r.json[0])

    ids = [c["id"] for c in client.get("/api/v1/centres", query_string={"service": "passport.renew"}).json]
    assert ids == ["amman-one"]
    ids = [c["id"] for c in client.get("/api/v1/centres", query_string={"city": "irbid"}).json]
    assert ids == ["irbid-one"]


def test_centre_detail_has_hours_services_counters_and_upcoming_closures(make, client, admin_headers):
    centre = make.centre(id="detail-centre", counters=3)
    make.offering(centre, make.service(code="civil.non_conviction"))
    r = client.post(
        f"/api/v1/admin/centres/{centre.id}/closures",
        headers=admin_headers,
        json={"date": "2099-03-01", "reason_ar": "عطلة", "reason_en": "Holiday"},
    )
    assert r.status_code == 201
    detail = client.get(f"/api/v1/centres/{centre.id}", headers={"Accept-Language": "ar"}).json
    assert detail["timezone"] == "Asia/Amman"
    assert detail["services"] == ["civil.non_conviction"]
    assert [c["name"] for c in detail["counters"]] == ["شباك 1", "شباك 2", "شباك 3"]
    assert detail["closures"][0]["date"] == "2099-03-01"
    assert detail["weekly_hours"]["sun"] == [["08:00", "15:00"]]


def test_admin_creates_and_changes_the_catalogue(client, admin_headers):
    r = client.post(
        "/api/v1/admin/centres",
        headers=admin_headers,
        json={
            "id": "zarqa",
            "name_ar": "مركز الزرقاء",
            "name_en": "Zarqa Centre",
            "city": "Zarqa",
            "kind": "one_stop",
            "timezone": "Asia/Amman",
            "weekly_hours": {"sun": [["08:00", "12:00"], ["13:00", "15:00"]]},
        },
    )
    assert r.status_code == 201, r.json
    r = client.post(
        "/api/v1/admin/services",
        headers=admin_headers,
        json={
            "code": "lands.site_plan",
            "name_ar": "مخطط موقع",
            "name_en": "Site plan",
            "ticket_prefix": "L",
        },
    )
    assert r.status_code == 201 and r.json["group"] == "lands"
    r = client.post(
        "/api/v1/admin/centres/zarqa/offerings",
        headers=admin_headers,
        json={"service": "lands.site_plan", "capacity": 3, "slot_minutes": 15},
    )
    assert r.status_code == 201 and r.json["capacity"] == 3
    r = client.patch(f"/api/v1/admin/offerings/{r.json['id']}", headers=admin_headers, json={"capacity": 4})
    assert r.status_code == 200 and r.json["capacity"] == 4
    r = client.post(
        "/api/v1/admin/centres/zarqa/counters",
        headers=admin_headers,
        json={"number": 1, "name_ar": "شباك 1", "name_en": "Counter 1"},
    )
    assert r.status_code == 201
    dup = client.post(
        "/api/v1/admin/centres/zarqa/counters",
        headers=admin_headers,
        json={"number": 1, "name_ar": "شباك 1", "name_en": "Counter 1"},
    )
    assert dup.status_code == 409
    r = client.patch("/api/v1/admin/centres/zarqa", headers=admin_headers, json={"city": "Zarqa City"})
    assert r.status_code == 200 and r.json["city"] == "Zarqa City"


@pytest.mark.parametrize(
    "body",
    [
        {"timezone": "Mars/Olympus"},
        {"weekly_hours": {"funday": [["08:00", "15:00"]]}},
        {"weekly_hours": {"sun": [["15:00", "08:00"]]}},
        {"weekly_hours": {"sun": [["08:00", "12:00"], ["11:00", "15:00"]]}},
        {"weekly_hours": {"sun": [["8am", "3pm"]]}},
        {"kind": "castle"},
    ],
)
def test_admin_input_is_validated(make, client, admin_headers, body):
    centre = make.centre()
    r = client.patch(f"/api/v1/admin/centres/{centre.id}", headers=admin_headers, json=body)
    assert r.status_code == 422 and r.json["error"]["code"] == "validation_error"


def test_schedule_changes_are_announced(make, app, client, admin_headers):
    from app.catalogue.services import schedule_changed

    seen = []

    def receiver(centre_id, **kwargs):
        seen.append((centre_id, kwargs.get("offering_id")))

    schedule_changed.connect(receiver)
    try:
        centre = make.centre()
        client.patch(
            f"/api/v1/admin/centres/{centre.id}",
            headers=admin_headers,
            json={"weekly_hours": {"mon": [["09:00", "13:00"]]}},
        )
        client.post(
            f"/api/v1/admin/centres/{centre.id}/closures", headers=admin_headers, json={"date": "2099-01-02"}
        )
    finally:
        schedule_changed.disconnect(receiver)
    assert seen == [(centre.id, None), (centre.id, None)]
