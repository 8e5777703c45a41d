"""Logging out ends the session at once: the access tokens of a logged-out session, or of a refresh family
revoked for reuse, are refused (401) from the next request; exact with Redis down or emptied."""

from __future__ import annotations

from app.redis_client import get_redis
from tests.factories import PASSWORD

API = "/api/v1"


def _login(client, account) -> dict:
    response = client.post(
        f"{API}/auth/login", json={"national_id": account.national_id, "password": PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _me(client, tokens) -> int:
    return client.get(f"{API}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code


def test_logout_refuses_the_sessions_access_token_from_the_next_request(make, client):
    account = make.citizen()
    ended, other = _login(client, account), _login(client, account)
    assert _me(client, ended) == 200
    assert (
        client.post(f"{API}/auth/logout", json={"refresh_token": ended["refresh_token"]}).status_code == 204
    )
    response = client.get(f"{API}/me", headers={"Authorization": f"Bearer {ended['access_token']}"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "session_ended"
    assert _me(client, other) == 200  # another device's session of the same citizen goes on


def test_a_refresh_family_revoked_for_reuse_refuses_every_access_token_of_it(make, client):
    account = make.citizen()
    first = _login(client, account)
    second = client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]}).get_json()
    assert _me(client, second) == 200
    reuse = client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert _me(client, first) == 401 and _me(client, second) == 401


def test_redis_emptied_after_a_logout_the_session_stays_ended(app, make, client):
    account = make.citizen()
    tokens = _login(client, account)
    client.post(f"{API}/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    with app.app_context():
        get_redis().flushdb()  # a Redis restart without persistence
    assert _me(client, tokens) == 401
    assert _me(client, tokens) == 401  # and again, now from the copy the first check wrote back
    with app.app_context():
        assert get_redis().exists("revoked-sessions:synced")


def test_redis_down_revocation_is_read_from_the_database(make_app, dead_redis_url):
    app = make_app(REDIS_URL=dead_redis_url)
    client = app.test_client()
    from tests.factories import Make

    account = Make(app).citizen()
    tokens, kept = _login(client, account), _login(client, account)
    assert (
        client.post(f"{API}/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    )
    assert _me(client, tokens) == 401
    assert _me(client, kept) == 200


def test_a_session_check_costs_one_redis_round_trip(app, make, client, monkeypatch):
    """The price of revocation per request: one MGET, no other Redis command and no database read."""
    account = make.citizen()
    tokens = _login(client, account)
    _me(client, tokens)  # warm: the marker is written by the first check
    from app.accounts import revocation

    calls = []
    real = revocation.is_revoked

    def counted(session_id):
        with app.app_context():
            client_ = get_redis()
        original = type(client_).execute_command

        def spy(self, *args, **kwargs):
            calls.append(args[0])
            return original(self, *args, **kwargs)

        monkeypatch.setattr(type(client_), "execute_command", spy)
        try:
            return real(session_id)
        finally:
            monkeypatch.setattr(type(client_), "execute_command", original)

    monkeypatch.setattr(revocation, "is_revoked", counted)
    assert _me(client, tokens) == 200
    assert calls == ["MGET"]
