"""`flask demo-data` is idempotent, matches SPEC §7, and is refused in production; kiosk tokens work."""

from sqlalchemy import func, select

from app.accounts.models import Account
from app.catalogue.models import Centre, Counter


def _counts(app):
    with app.app_context():
        from app.extensions import db

        return (
            db.session.scalar(select(func.count()).select_from(Account)),
            db.session.scalar(select(func.count()).select_from(Centre)),
            db.session.scalar(select(func.count()).select_from(Counter)),
        )


def test_demo_data_is_idempotent_and_lets_demo_citizens_sign_in(app, runner, client):
    first = runner.invoke(args=["demo-data"])
    assert first.exit_code == 0, first.output
    counts = _counts(app)
    assert runner.invoke(args=["demo-data"]).exit_code == 0
    assert _counts(app) == counts
    assert counts[0] == 50 + 10 + 5 + 3
    with app.app_context():
        from app.extensions import db
        from booking.release_models import Draw

        draws = db.session.scalars(select(Draw)).all()
        assert [(d.centre_id, d.service_code, d.status) for d in draws] == [
            ("irbid", "passport.issue", "open")
        ]
        assert (draws[0].days_to - draws[0].days_from).days == 6
        assert 6.9 <= (draws[0].entries_close_at - draws[0].entries_open_at).total_seconds() / 86400 <= 7

    r = client.post("/api/v1/auth/login", json={"national_id": "9990000001", "password": "Demo-pass-2026"})
    assert r.status_code == 200
    supervisor = client.post(
        "/api/v1/auth/login", json={"national_id": "9980000004", "password": "Demo-pass-2026"}
    )
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {supervisor.json['access_token']}"}).json
    assert me["role"] == "supervisor" and me["centre_id"] == "amman-muqabalain"
    # The airport is open around the clock, with two clerks and a supervisor of its own.
    for national_id, role in (("9980000011", "staff"), ("9980000012", "staff"), ("9980000013", "supervisor")):
        tokens = client.post(
            "/api/v1/auth/login", json={"national_id": national_id, "password": "Demo-pass-2026"}
        )
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens.json['access_token']}"}).json
        assert (me["role"], me["centre_id"]) == (role, "queen-alia-airport")
    airport = client.get("/api/v1/centres/queen-alia-airport").json
    assert all(hours == [["00:00", "24:00"]] for hours in airport["weekly_hours"].values())
    assert len(airport["weekly_hours"]) == 7
    expat = client.post(
        "/api/v1/auth/login", json={"national_id": "9990000101", "password": "Demo-pass-2026"}
    )
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {expat.json['access_token']}"}).json
    assert me["expatriate"] is True

    centres = {c["id"]: c for c in client.get("/api/v1/centres", query_string={"page_size": 100}).json}
    assert {"amman-muqabalain", "embassy-riyadh", "embassy-abudhabi", "embassy-washington"} <= set(centres)
    assert centres["embassy-washington"]["timezone"] == "America/New_York"
    muqabalain = client.get("/api/v1/centres/amman-muqabalain").json
    assert len(muqabalain["counters"]) >= 6
    assert {s["code"] for s in client.get("/api/v1/services").json} <= set(muqabalain["services"])


def test_demo_data_refused_in_production(make_app):
    app = make_app(
        APP_ENV="production",
        SECRET_KEY="s" * 40,
        JWT_KEYS="k:" + "j" * 40,
        OTP_PEPPER="p" * 40,
        REDIS_URL="redis://127.0.0.1:6379/15",
        SMS_SENDER="http",
        SMS_GATEWAY_URL="http://127.0.0.1:9",
    )
    result = app.test_cli_runner().invoke(args=["demo-data"])
    assert result.exit_code != 0 and "refused in production" in result.output


def test_kiosk_token_command_prints_a_working_token(make, runner, client):
    centre = make.centre()
    result = runner.invoke(args=["kiosk-token", centre.id])
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("ksk_")
    missing = runner.invoke(args=["kiosk-token", "no-such-centre"])
    assert missing.exit_code != 0


def test_registry_people_without_an_account_can_register(runner, client, app):
    from app.demo import UNREGISTERED_PEOPLE

    assert runner.invoke(args=["demo-data"]).exit_code == 0
    born, _ = UNREGISTERED_PEOPLE["9990000301"]
    body = {
        "national_id": "9990000301",
        "date_of_birth": born.isoformat(),
        "full_name": "Newcomer",
        "phone": "+962790000301",
        "password": "Newcomer-pass-2026",
    }
    r = client.post("/api/v1/auth/register", json=body)
    assert r.status_code == 201, r.json
    # Loading the demo data again leaves the newcomer's own account alone.
    assert runner.invoke(args=["demo-data"]).exit_code == 0
    with app.app_context():
        from app.extensions import db

        account = db.session.scalar(select(Account).where(Account.national_id == "9990000301"))
        assert account is not None and account.full_name == "Newcomer"
        others = db.session.scalar(
            select(func.count()).where(Account.national_id.in_(list(UNREGISTERED_PEOPLE)))
        )
    assert others == 1
