"""Waitlists (SPEC §9): joining and leaving, and freed seats handed to those who wait, never to open sale."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from booking import services
from booking.release_models import WaitlistEntry

AMMAN = zoneinfo.ZoneInfo("Asia/Amman")


def _day(days: int) -> dt.date:
    return clock.now().astimezone(AMMAN).date() + dt.timedelta(days=days)


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), AMMAN).astimezone(dt.UTC)


def _join(client, kit, citizen, offering, *, days=(1, 10), part="any", **headers):
    return client.post(
        "/api/v1/waitlist",
        json={
            "service": offering.service_code,
            "centre_id": offering.centre_id,
            "from": _day(days[0]).isoformat(),
            "to": _day(days[1]).isoformat(),
            "part_of_day": part,
        },
        headers={**kit.headers_for(citizen), **headers},
    )


def _count(kit, model, **where):
    return kit.call(lambda: db.session.scalar(select(func.count()).select_from(model).filter_by(**where)))


def _full_slot(kit, offering, *, capacity=1, day=3, hour=9):
    """A slot whose every seat is a confirmed booking; returns (slot, [(citizen, reference)])."""
    slot = kit.slot(offering, start=_at(_day(day), hour), capacity=capacity)
    holders = []
    for citizen in kit.citizens(capacity):
        booking = kit.call(services.hold_slot, account_id=citizen, slot_id=slot.id)
        kit.call(services.confirm_booking, account_id=citizen, reference=booking.reference)
        holders.append((citizen, booking.reference))
    return slot, holders


@pytest.fixture
def no_release_delay(app):
    app.config["CANCEL_RELEASE_DELAY_MINUTES"] = 0


def test_join_list_and_leave(client, kit):
    offering = kit.offering()
    first, second = kit.citizens(2)
    joined = _join(client, kit, first, offering, **{"Idempotency-Key": "w-1"})
    assert joined.status_code == 201, joined.get_json()
    body = joined.get_json()
    assert body["position"] == 1 and body["status"] == "waiting"
    replay = _join(client, kit, first, offering, **{"Idempotency-Key": "w-1"})
    assert replay.get_json()["waitlist_id"] == body["waitlist_id"]
    assert _join(client, kit, second, offering).get_json()["position"] == 2
    again = _join(client, kit, first, offering)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_waitlisted"

    listed = client.get("/api/v1/waitlist", headers=kit.headers_for(first)).get_json()
    assert [w["waitlist_id"] for w in listed] == [body["waitlist_id"]]
    other = client.delete(f"/api/v1/waitlist/{body['waitlist_id']}", headers=kit.headers_for(second))
    assert other.status_code == 404
    left = client.delete(f"/api/v1/waitlist/{body['waitlist_id']}", headers=kit.headers_for(first))
    assert left.status_code == 200 and left.get_json()["status"] == "left"
    assert client.get("/api/v1/waitlist", headers=kit.headers_for(second)).get_json()[0]["position"] == 1


def test_bad_waitlist_requests_write_nothing(client, kit):
    offering = kit.offering()
    citizen = kit.citizen_id()
    far = _join(client, kit, citizen, offering, days=(1, 60))
    assert far.status_code == 422 and "to" in far.get_json()["error"]["details"]["fields"]
    backwards = _join(client, kit, citizen, offering, days=(5, 2))
    assert backwards.status_code == 422
    drawn = kit.offering(allocation="draw")
    assert _join(client, kit, citizen, drawn).get_json()["error"]["code"] == "draw_allocation"
    passport = kit.offering(
        service_kw={"code": "passport.issue", "group": "passport", "eligibility": "passport_issue"}
    )
    refused = _join(client, kit, citizen, passport)
    assert (
        refused.status_code == 403
        and refused.get_json()["error"]["details"]["reason"] == "valid_passport_held"
    )
    assert _count(kit, WaitlistEntry) == 0
