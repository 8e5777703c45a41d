"""Limits that fit a country (SPEC §8): a crowd behind one address gets in, a flood does not; one
national id is throttled with growing delays, the (national id, address) pair is locked, and the owner
gets back in with a code texted to the phone on file; the lockout is exact with Redis down."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from app import clock
from app.accounts.models import Account
from app.extensions import db
from tests.factories import PASSWORD, Make

API = "/api/v1"
# The production defaults of the limits a crowd meets (tests elsewhere run with loosened ones).
PRODUCTION_LIMITS = {
    "RATELIMIT_LOGIN": "10 per minute;50 per hour",
    "RATELIMIT_OTP": "5 per 10 minutes;20 per day",
    "RATELIMIT_DEFAULT": "20000 per minute",
}


def _login(client, national_id, password=PASSWORD, address="10.1.1.1", **extra):
    return client.post(
        f"{API}/auth/login",
        json={"national_id": national_id, "password": password, **extra},
        environ_base={"REMOTE_ADDR": address},
        headers={"Accept-Language": "en"},
    )


def test_forty_citizens_behind_one_address_all_sign_in(app, make_app):
    crowd_app = make_app(**PRODUCTION_LIMITS)
    make = Make(crowd_app)
    citizens = [make.citizen() for _ in range(40)]
    client = crowd_app.test_client()
    statuses = [_login(client, c.national_id, address="203.0.113.7").status_code for c in citizens]
    assert statuses == [200] * 40


def test_a_flood_from_one_address_is_refused_and_others_go_on(app, make_app):
    flood_app = make_app(RATELIMIT_LOGIN_PER_ADDRESS="30 per minute")
    client = flood_app.test_client()
    statuses = [
        _login(client, f"77700000{n:02d}", "wrong-pass-1", "198.51.100.9").status_code for n in range(31)
    ]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429
    citizen = Make(flood_app).citizen()
    assert _login(client, citizen.national_id, address="198.51.100.10").status_code == 200


def test_a_stranger_locks_only_their_own_address_not_the_owner(app, make):
    owner = make.citizen()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert _login(app.test_client(), owner.national_id, "wrong-pass-1", "192.0.2.66").status_code == 401
    locked = _login(app.test_client(), owner.national_id, address="192.0.2.66")
    assert locked.status_code == 429 and locked.get_json()["error"]["code"] == "account_locked"
    assert int(locked.headers["Retry-After"]) > 60
    # The owner, from home, waits at most the national id's short delay, then signs in.
    home = _login(app.test_client(), owner.national_id, address="10.9.9.9")
    if home.status_code == 429:
        assert home.get_json()["error"]["code"] == "rate_limited"
        assert int(home.headers["Retry-After"]) <= app.config["LOGIN_THROTTLE_MAX_SECONDS"]
        clock.shift(dt.timedelta(seconds=int(home.headers["Retry-After"]) + 1))
        home = _login(app.test_client(), owner.national_id, address="10.9.9.9")
    assert home.status_code == 200
    # The stranger's address stays locked for its full time.
    assert _login(app.test_client(), owner.national_id, address="192.0.2.66").status_code == 429
    clock.shift(dt.timedelta(minutes=app.config["LOGIN_LOCKOUT_MINUTES"], seconds=1))
    assert _login(app.test_client(), owner.national_id, address="192.0.2.66").status_code == 200


def test_one_national_id_is_slowed_with_growing_delays(app, make):
    """Guesses from ever new addresses (no pair ever locks) wait longer and longer, up to the cap."""
    owner = make.citizen()
    client = app.test_client()
    free = app.config["LOGIN_THROTTLE_FREE_ATTEMPTS"]
    for n in range(free - 1):
        assert _login(client, owner.national_id, "wrong-pass-1", f"172.16.0.{n}").status_code == 401
    waits = []
    for n in range(free, free + 8):
        assert _login(client, owner.national_id, "wrong-pass-1", f"172.16.1.{n}").status_code == 401
        refused = _login(client, owner.national_id, "wrong-pass-1", f"172.16.2.{n}")
        assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
        waits.append(int(refused.headers["Retry-After"]))
        clock.shift(dt.timedelta(seconds=waits[-1]))
    assert waits == sorted(waits) and waits[0] <= 2 and waits[-1] == app.config["LOGIN_THROTTLE_MAX_SECONDS"]


def _sent_code(app) -> str:
    _phone, text = app.extensions["sms_sender"].sent[-1]
    return re.search(r"\d{6}", text).group(0)


def test_the_owner_gets_past_lock_and_throttle_with_a_code_to_the_phone_on_file(app, make):
    owner = make.citizen()
    for _ in range(app.config["LOGIN_MAX_FAILURES"] + 3):
        _login(app.test_client(), owner.national_id, "wrong-pass-1", "192.0.2.66")
    assert _login(app.test_client(), owner.national_id, address="192.0.2.66").status_code == 429

    client = app.test_client()
    sent = client.post(f"{API}/auth/login-code", json={"national_id": owner.national_id})
    assert sent.status_code == 202
    phone, _text = app.extensions["sms_sender"].sent[-1]
    assert phone == owner.phone
    code = _sent_code(app)
    signed_in = _login(client, owner.national_id, address="192.0.2.66", code=code)
    assert signed_in.status_code == 200, signed_in.get_json()
    # One code, one sign-in; and a wrong code is refused.
    assert _login(client, owner.national_id, address="192.0.2.66", code=code).status_code == 422
    # The success cleared the pair and the national id's counter.
    assert _login(client, owner.national_id, address="192.0.2.66").status_code == 200
    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.national_id == owner.national_id))
        assert account.failed_logins == 0 and account.locked_until is None


def test_a_login_code_for_an_unknown_id_answers_the_same(client):
    assert client.post(f"{API}/auth/login-code", json={"national_id": "1231231231"}).status_code == 202


def test_the_lockout_stays_exact_with_redis_down(app, make_app, dead_redis_url):
    down = make_app(REDIS_URL=dead_redis_url)
    owner = Make(down).citizen()
    client = down.test_client()
    statuses = [
        _login(client, owner.national_id, "wrong-pass-1", "192.0.2.70").status_code
        for _ in range(down.config["LOGIN_MAX_FAILURES"] + 2)
    ]
    assert statuses == [401] * down.config["LOGIN_MAX_FAILURES"] + [429, 429]


@pytest.mark.postgres_only
def test_parallel_guesses_cannot_pass_the_pair_limit(app, make):
    """20 guesses at once from one address: at most LOGIN_MAX_FAILURES are checked, the rest refused."""
    owner = make.citizen()

    def guess(_):
        return _login(app.test_client(), owner.national_id, "wrong-pass-1", "192.0.2.80").status_code

    statuses = make.race(guess, range(20), workers=20)
    assert statuses.count(401) <= app.config["LOGIN_MAX_FAILURES"]
    assert set(statuses) <= {401, 429}
    from app.accounts.models import LoginLockout

    with app.app_context():
        pair = db.session.scalar(select(LoginLockout).where(LoginLockout.account_id == owner.id))
        assert pair.failures == statuses.count(401)  # every password checked was counted, and only those
        assert (pair.locked_until is not None) == (pair.failures >= app.config["LOGIN_MAX_FAILURES"])


def test_pairs_untouched_for_a_day_are_forgotten(app, make):
    from app.accounts.models import LoginLockout
    from app.accounts.services import prune_login_lockouts

    owner = make.citizen()
    _login(app.test_client(), owner.national_id, "wrong-pass-1", "192.0.2.90")
    with app.app_context():
        assert prune_login_lockouts() == 0
    clock.shift(dt.timedelta(days=1, seconds=1))
    with app.app_context():
        assert prune_login_lockouts() == 1
        assert db.session.scalar(select(LoginLockout)) is None
