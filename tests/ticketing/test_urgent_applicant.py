"""An urgent request may be for a dependent (SPEC §10): a minor the citizen is a guardian of, no one else."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from booking.models import AbuseEvent, BookingApplicant
from tests.ticketing.test_urgent import approve, ask
from ticketing.models import UrgentRequest


def _count(kit, model) -> int:
    return kit.call(lambda: db.session.scalar(select(func.count()).select_from(model)))


def test_an_urgent_request_for_a_child_names_the_child_on_the_pass(kit, make, client):
    site = kit.site()
    parent = make.citizen()
    child = make.minor(parent, age=8)
    headers = make.headers(parent)

    asked = ask(client, site, headers, applicant=child.national_id)

    assert asked.status_code == 201, asked.json
    assert asked.json["applicant"] == child.national_id
    approved = approve(client, site, asked.json["id"])
    assert approved.status_code == 200, approved.json
    applicants = kit.call(lambda: list(db.session.scalars(select(BookingApplicant.national_id))))
    assert applicants == [child.national_id]


def test_an_urgent_request_for_a_stranger_is_403_and_recorded(kit, make, client):
    site = kit.site()
    parent = make.citizen()
    someone_elses = make.minor(make.citizen(), age=8)

    asked = ask(client, site, make.headers(parent), applicant=someone_elses.national_id)

    assert asked.status_code == 403
    assert asked.json["error"]["code"] == "not_a_dependent"
    assert _count(kit, UrgentRequest) == 0
    events = kit.call(lambda: list(db.session.scalars(select(AbuseEvent))))
    assert [(e.rule, e.account_id) for e in events] == [("not_a_dependent", parent.id)]
