"""Every anti-abuse rule answers with its code and leaves an abuse event; admins list them and lift."""

import contextlib
import datetime as dt

import firebase_admin
import pytest
from firebase_admin import app_check
from sqlalchemy import select

from app import clock
from app.accounts.models import Account
from app.catalogue.models import Service
from app.extensions import db
from booking import services
from booking.models import AbuseEvent, BookingSuspension, Slot
from notifications.models import Notification
from tests.standins import GoogleStandin


def _hold(client, headers, slot_id, **extra):
    return client.post("/api/v1/bookings", json={"slot_id": slot_id}, headers={**headers, **extra})


def _events(kit, rule=None):
    def read():
        query = select(AbuseEvent).order_by(AbuseEvent.id)
        if rule:
            query = query.where(AbuseEvent.rule == rule)
        return list(db.session.scalars(query))

    return kit.call(read)


def _passport_offering(kit, make, code="passport.renew", eligibility="passport_renew"):
    centre = make.centre()
    service = make.fresh(Service, code) or make.service(code=code, eligibility=eligibility, high_demand=True)
    return make.offering(centre, service, slot_minutes=15, capacity=4)


def _refused(response, status, code):
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code, response.get_json()
    return response.get_json()["error"]


def test_eligibility_from_the_registry_points_to_the_urgent_path(client, kit, make):
    renew = _passport_offering(kit, make)
    issue = _passport_offering(kit, make, "passport.issue", "passport_issue")
    today = clock.now().date()
    valid_for_years = kit.citizen_id(passport_expiry=today + dt.timedelta(days=900))
    expiring = kit.citizen_id(passport_expiry=today + dt.timedelta(days=100))
    expired = kit.citizen_id(passport_expiry=today - dt.timedelta(days=10))
    never = kit.citizen_id(passport_expiry=None, passport_number=None)

    error = _refused(_hold(client, kit.headers_for(valid_for_years), kit.slot(renew).id), 403, "not_eligible")
    assert error["details"]["reason"] == "passport_not_expiring"
    assert error["details"]["urgent_request_path"] == "/api/v1/urgent-requests"
    assert error["message"]
    error = _refused(_hold(client, kit.headers_for(never), kit.slot(renew).id), 403, "not_eligible")
    assert error["details"]["reason"] == "no_passport"
    error = _refused(_hold(client, kit.headers_for(expiring), kit.slot(issue).id), 403, "not_eligible")
    assert error["details"]["reason"] == "valid_passport_held"

    assert _hold(client, kit.headers_for(expiring), kit.slot(renew).id).status_code == 201
    assert _hold(client, kit.headers_for(expired), kit.slot(renew).id).status_code == 201
    assert _hold(client, kit.headers_for(never), kit.slot(issue).id).status_code == 201

    events = _events(kit, "eligibility")
    assert [e.reason for e in events] == ["passport_not_expiring", "no_passport", "valid_passport_held"]
    assert events[0].national_id is not None and events[0].account_id == valid_for_years


def test_arabic_refusal_message(client, kit, make):
    renew = _passport_offering(kit, make)
    citizen = kit.citizen_id(passport_expiry=clock.now().date() + dt.timedelta(days=900))
    headers = {**kit.headers_for(citizen), "Accept-Language": "ar"}
    error = _refused(_hold(client, headers, kit.slot(renew).id), 403, "not_eligible")
    assert error["message"]


def test_quotas_one_per_group_three_in_all(client, kit, make):
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    centre = make.centre()
    services_ = [make.service(code=f"grp{n}.first") for n in range(4)]
    second_in_group = make.service(code="grp0.second")
    offerings = [make.offering(centre, s) for s in [*services_, second_in_group]]
    for offering in offerings[:3]:
        ref = _hold(client, headers, kit.slot(offering).id).get_json()["reference"]
        assert client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers).status_code == 200

    error = _refused(_hold(client, headers, kit.slot(offerings[4]).id), 409, "active_booking_exists")
    assert error["details"]["service_group"] == "grp0"
    _refused(_hold(client, headers, kit.slot(offerings[3]).id), 409, "quota_exceeded")
    assert [e.rule for e in _events(kit)] == ["quota_per_group", "quota_active"]
    assert kit.call(lambda: db.session.scalar(select(db.func.sum(Slot.booked)))) == 3


def test_one_hold_at_a_time(client, kit):
    offering = kit.offering()
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    assert _hold(client, headers, kit.slot(offering).id).status_code == 201
    other = kit.offering()
    _refused(_hold(client, headers, kit.slot(other).id), 409, "hold_limit")
    assert [e.rule for e in _events(kit)] == ["quota_holds"]


def _no_show(kit, citizen, offering, hours_ahead):
    slot = kit.slot(offering, hours_ahead=hours_ahead)
    booking = kit.call(services.hold_slot, account_id=citizen, slot_id=slot.id)
    kit.call(services.confirm_booking, account_id=citizen, reference=booking.reference)
    return booking


def test_two_no_shows_suspend_high_demand_booking(app, client, kit, make):
    renew = _passport_offering(kit, make)
    plain = kit.offering()
    citizen = kit.citizen_id()
    first = _no_show(kit, citizen, plain, 2)
    clock.shift(dt.timedelta(hours=3))
    from booking.tasks import mark_no_shows

    assert kit.call(mark_no_shows) == 1
    assert kit.bookings(reference=first.reference)[0].status == "no_show"
    second = _no_show(kit, citizen, plain, 2)
    clock.shift(dt.timedelta(hours=3))
    # Two schedulers at once: each effect happens once.
    results = kit.race(lambda _: mark_no_shows(), range(2), workers=2)
    assert sum(results) == 2  # one no-show + one suspension
    assert kit.bookings(reference=second.reference)[0].status == "no_show"
    suspensions = kit.call(lambda: list(db.session.scalars(select(BookingSuspension))))
    assert [(s.kind, s.scope) for s in suspensions] == [("no_show", "high_demand")]
    notes = kit.call(
        lambda: list(db.session.scalars(select(Notification).where(Notification.kind == "booking_suspended")))
    )
    assert len(notes) == 1

    headers = kit.headers_for(citizen)
    error = _refused(_hold(client, headers, kit.slot(renew).id), 403, "booking_suspended")
    until = dt.datetime.fromisoformat(error["details"]["until"])
    assert 29 <= (until - clock.now()).days <= 30
    assert _hold(client, headers, kit.slot(plain).id).status_code == 201  # not high-demand
    assert [e.rule for e in _events(kit)] == ["no_show", "suspension"]


def test_three_cancellations_in_a_week_cool_booking_down(client, kit):
    offering = kit.offering()
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    for n in range(3):
        ref = _hold(client, headers, kit.slot(offering, hours_ahead=24 + n).id).get_json()["reference"]
        assert client.post(f"/api/v1/bookings/{ref}/cancel", headers=headers).status_code == 200
    error = _refused(_hold(client, headers, kit.slot(kit.offering()).id), 403, "booking_suspended")
    assert error["details"]["reason"] == "cancel_cooldown"
    assert [e.rule for e in _events(kit)] == ["cancel_cooldown", "suspension"]
    notes = kit.call(
        lambda: list(db.session.scalars(select(Notification).where(Notification.kind == "booking_cooldown")))
    )
    assert len(notes) == 1 and notes[0].account_id == citizen

    clock.shift(dt.timedelta(days=7, minutes=1))
    fresh = kit.slot(offering, hours_ahead=48)
    assert _hold(client, kit.headers_for(citizen), fresh.id).status_code == 201


def test_device_binding_at_most_three_accounts(client, kit):
    offering = kit.offering()
    citizens = kit.citizens(4)
    device = {"X-Device-Id": "phone-abc"}
    for citizen in citizens[:3]:
        assert _hold(client, kit.headers_for(citizen), kit.slot(offering).id, **device).status_code == 201
    error = _refused(
        _hold(client, kit.headers_for(citizens[3]), kit.slot(offering).id, **device), 403, "device_limit"
    )
    assert error["details"]["limit"] == 3
    # The same accounts keep using the device; a new device is fine.
    event = _events(kit, "device_binding")[0]
    assert event.device_id == "phone-abc" and event.account_id == citizens[3]
    assert (
        _hold(
            client, kit.headers_for(citizens[3]), kit.slot(offering).id, **{"X-Device-Id": "other"}
        ).status_code
        == 201
    )

    clock.shift(dt.timedelta(days=31))
    late = kit.citizen_id()
    slot = kit.slot(offering, hours_ahead=48)
    assert _hold(client, kit.headers_for(late), slot.id, **device).status_code == 201


def test_rate_limit_answers_429_with_retry_after_and_records_it(make_app, kit):
    app = make_app(RATELIMIT_HOLDS="2 per minute", RATELIMIT_HOLDS_PER_ADDRESS="2 per minute")
    client = app.test_client()
    offering = kit.offering()
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    slot = kit.slot(offering, capacity=5)
    assert _hold(client, headers, slot.id).status_code == 201
    assert _hold(client, headers, slot.id).status_code == 409  # hold_limit, still counted
    limited = _hold(client, headers, slot.id)
    _refused(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert [e.rule for e in _events(kit, "rate_limit")] == ["rate_limit"]
    # A flood is recorded once per tripped limit a minute, however many requests it sends ...
    for _ in range(5):
        _refused(_hold(client, headers, slot.id), 429, "rate_limited")
    assert len(_events(kit, "rate_limit")) == 1
    # ... and however many accounts it uses from one IP (the IP's limit is one record).
    for other in kit.citizens(3):
        _refused(_hold(client, kit.headers_for(other), slot.id), 429, "rate_limited")
    recorded = len(_events(kit, "rate_limit"))
    assert recorded <= 2
    for other in kit.citizens(3):
        _refused(_hold(client, kit.headers_for(other), slot.id), 429, "rate_limited")
    assert len(_events(kit, "rate_limit")) == recorded


def test_redis_down_bookings_stay_correct_and_limits_fall_back_to_memory(make_app, kit, dead_redis_url):
    app = make_app(REDIS_URL=dead_redis_url, RATELIMIT_HOLDS="3 per minute")
    client = app.test_client()
    slot = kit.slot(kit.offering(), capacity=2)
    citizens = kit.citizens(3)
    statuses = [
        _hold(client, kit.headers_for(c), slot.id, **{"X-Device-Id": "d1"}).status_code for c in citizens
    ]
    assert statuses == [201, 201, 409]
    assert kit.slot_state(slot.id) == (2, 2)
    # The same device and phone hit their limits, counted in this process's memory (the request during
    # which Flask-Limiter finds Redis dead may go uncounted, so allow it one more).
    answers = [
        _hold(client, kit.headers_for(citizens[2]), slot.id, **{"X-Device-Id": "d1"}) for _ in range(2)
    ]
    limited = next((a for a in answers if a.status_code == 429), answers[-1])
    _refused(limited, 429, "rate_limited")
    assert "Retry-After" in limited.headers
    assert kit.slot_state(slot.id) == (2, 2)


PROJECT_NUMBER = "123456789012"
APP_ID = "1:123456789012:android:0a1b2c3d4e5f6789"


@pytest.fixture
def google(monkeypatch):
    with GoogleStandin(project_id="sanad-test", project_number=PROJECT_NUMBER) as standin:
        monkeypatch.setattr(app_check._AppCheckService, "_JWKS_URL", standin.jwks_url)
        yield standin
    with contextlib.suppress(ValueError):
        firebase_admin.delete_app(firebase_admin.get_app("sanad-app-check"))


def test_app_check_required(make_app, kit, google):
    app = make_app(APP_CHECK_REQUIRED="true", APP_CHECK_PROJECT_NUMBER=PROJECT_NUMBER)
    client = app.test_client()
    offering = kit.offering()
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)

    _refused(_hold(client, headers, kit.slot(offering).id), 401, "app_check_failed")
    bad = {"X-Firebase-AppCheck": "not-a-token"}
    _refused(_hold(client, headers, kit.slot(offering).id, **bad), 401, "app_check_failed")
    good = {"X-Firebase-AppCheck": google.make_app_check_token(PROJECT_NUMBER, APP_ID)}
    held = _hold(client, headers, kit.slot(offering).id, **good)
    assert held.status_code == 201, held.get_json()
    ref = held.get_json()["reference"]
    _refused(client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers), 401, "app_check_failed")
    assert client.post(f"/api/v1/bookings/{ref}/confirm", headers={**headers, **good}).status_code == 200
    assert [e.reason for e in _events(kit, "app_check")] == ["missing", "invalid", "missing"]


def test_admin_lists_events_and_lifts_suspensions(client, kit, make):
    offering = kit.offering()
    citizen = kit.citizen_id()
    headers = kit.headers_for(citizen)
    for n in range(3):
        ref = _hold(client, headers, kit.slot(offering, hours_ahead=24 + n).id).get_json()["reference"]
        client.post(f"/api/v1/bookings/{ref}/cancel", headers=headers)
    slot = kit.slot(offering, hours_ahead=30)
    _refused(_hold(client, headers, slot.id), 403, "booking_suspended")
    admin = make.account("admin")
    admin_headers = make.headers(admin)
    national_id = make.fresh(Account, citizen).national_id

    listed = client.get("/api/v1/admin/abuse-events?rule=suspension", headers=admin_headers)
    assert listed.status_code == 200 and "X-Pagination" in listed.headers
    assert [e["national_id"] for e in listed.get_json()] == [national_id]
    by_person = client.get(f"/api/v1/admin/abuse-events?national_id={national_id}", headers=admin_headers)
    assert {e["rule"] for e in by_person.get_json()} == {"cancel_cooldown", "suspension"}
    assert client.get("/api/v1/admin/abuse-events", headers=headers).status_code == 403

    suspensions = client.get(f"/api/v1/admin/citizens/{national_id}/suspensions", headers=admin_headers)
    assert [(s["kind"], s["active"]) for s in suspensions.get_json()] == [("cancel_cooldown", True)]
    lifted = client.post(
        f"/api/v1/admin/citizens/{national_id}/lift-suspension", json={}, headers=admin_headers
    )
    assert lifted.status_code == 200 and lifted.get_json()[0]["lifted_by"] == admin.id
    assert (
        client.get(f"/api/v1/admin/citizens/{national_id}/suspensions", headers=admin_headers).get_json()[0][
            "active"
        ]
        is False
    )
    assert _hold(client, headers, slot.id).status_code == 201
    assert (
        client.get("/api/v1/admin/citizens/0000000000/suspensions", headers=admin_headers).status_code == 404
    )


def test_holds_are_limited_per_phone_across_accounts_and_token_ages(make_app, kit):
    """Two accounts on one phone share the phone's hold limit, whether or not the token carries `phk`."""
    import jwt

    from app.accounts.models import Account
    from app.tokens import issue_access_token

    app = make_app(RATELIMIT_HOLDS="2 per minute", TRUSTED_PROXIES="1")
    client = app.test_client()
    offering = kit.offering()
    first, second = kit.citizens(2)
    with app.app_context():
        from app.extensions import db

        db.session.get(Account, second).phone = db.session.get(Account, first).phone
        db.session.commit()
        # A token issued before tokens carried the phone digest: the limiter looks the phone up.
        old_style, _ = issue_access_token(account_id=second, role="citizen", centre_id=None, language="en")
    new_style = kit.headers_for(first)
    claims = jwt.decode(new_style["Authorization"].split()[1], options={"verify_signature": False})
    assert "phk" in claims and claims["phk"] not in str(claims.get("phone", ""))
    old_headers = {"Authorization": f"Bearer {old_style}"}
    slots = [kit.slot(offering, capacity=5) for _ in range(3)]

    def hold(headers, slot, n):  # a new device and IP each time: only account and phone limits can bite
        extra = {"X-Device-Id": f"device-{n}", "X-Forwarded-For": f"10.0.0.{n}"}
        return _hold(client, headers, slot.id, **extra)

    assert hold(new_style, slots[0], 1).status_code == 201
    assert hold(old_headers, slots[1], 2).status_code == 201  # the other account: its own quota
    # The phone's third hold within the minute is limited, though this account has made only one.
    _refused(hold(old_headers, slots[2], 3), 429, "rate_limited")
