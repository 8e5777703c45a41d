"""GET /me/dependents: the registry's minors of whom the signed-in citizen is a guardian (SPEC §10)."""

import datetime as dt

from app import clock


def _nids(response):
    return [d["national_id"] for d in response.json]


def test_demo_guardians_see_their_children(runner, client):
    assert runner.invoke(args=["demo-data"]).exit_code == 0

    def dependents(national_id):
        login = client.post(
            "/api/v1/auth/login", json={"national_id": national_id, "password": "Demo-pass-2026"}
        )
        headers = {"Authorization": f"Bearer {login.json['access_token']}", "Accept-Language": "en"}
        return client.get("/api/v1/me/dependents", headers=headers)

    parent = dependents("9990000001")
    assert parent.status_code == 200
    assert sorted(_nids(parent)) == ["9990000201", "9990000202"]
    by_id = {d["national_id"]: d for d in parent.json}
    assert dt.date.fromisoformat(by_id["9990000201"]["passport_expiry"]) < clock.now().date()
    assert by_id["9990000202"]["passport_expiry"] is None
    assert by_id["9990000202"]["full_name"] == "Demo Minor 202"
    assert _nids(dependents("9990000036")) == ["9990000203"]
    assert dependents("9990000002").json == []


def test_a_child_who_turns_18_before_the_visit_is_not_a_dependent_for_it(make, client):
    parent = make.citizen()
    other = make.citizen()
    child = make.minor(parent, age=17)
    young = make.minor(parent, age=9)
    make.minor(other, age=9)  # another family's child is never listed
    headers = make.headers(parent)

    today = client.get("/api/v1/me/dependents", headers=headers)
    assert today.status_code == 200
    assert sorted(_nids(today)) == sorted([child.national_id, young.national_id])
    assert today.json[0]["date_of_birth"] <= today.json[1]["date_of_birth"]  # eldest first

    eighteenth = child.date_of_birth.replace(year=child.date_of_birth.year + 18)
    on_birthday = client.get(f"/api/v1/me/dependents?on={eighteenth.isoformat()}", headers=headers)
    assert _nids(on_birthday) == [young.national_id]
    day_before = (eighteenth - dt.timedelta(days=1)).isoformat()
    assert child.national_id in _nids(client.get(f"/api/v1/me/dependents?on={day_before}", headers=headers))


def test_dependents_need_a_citizen_and_a_valid_date(make, client):
    parent = make.citizen()
    assert client.get("/api/v1/me/dependents").status_code == 401
    bad = client.get("/api/v1/me/dependents?on=soon", headers=make.headers(parent))
    assert bad.status_code == 422
    assert "on" in str(bad.json["error"]["details"])
