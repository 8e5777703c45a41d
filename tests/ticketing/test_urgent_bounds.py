"""An urgent request's travel date is within a year: 9999-12-31 is a 422 on `travel_date`, nothing written."""

import datetime as dt

from sqlalchemy import func, select

from app import clock


def test_travel_date_far_ahead_is_refused_on_the_field(app, client, make):
    from ticketing.models import UrgentRequest

    centre = make.centre()
    headers = {**make.headers(make.citizen()), "Accept-Language": "en"}
    for travel in ("9999-12-31", (clock.now().date() + dt.timedelta(days=400)).isoformat()):
        r = client.post(
            "/api/v1/urgent-requests",
            json={
                "service": "passport.renew",
                "centre_id": centre.id,
                "reason_code": "medical",
                "travel_date": travel,
            },
            headers=headers,
        )
        assert r.status_code == 422, r.json
        message = r.json["error"]["details"]["fields"]["travel_date"][0]
        assert "within a year" in message and str(clock.now().year + 1) in message
    with app.app_context():
        from app.extensions import db

        assert db.session.scalar(select(func.count()).select_from(UrgentRequest)) == 0
