"""Draw entries for dependents (SPEC §10): one entry per person by national id; a win is their seat."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from booking import draw_run, services
from booking.models import AbuseEvent, Booking, BookingApplicant
from booking.release_models import DrawEntry
from tests.booking.test_draws import Release


def _enter(release, draw_id, citizen, applicant=None):
    body = {"part_of_day": "any", **({"applicant": applicant} if applicant else {})}
    return release.client.post(
        f"/api/v1/draws/{draw_id}/entries", json=body, headers=release.kit.headers_for(citizen)
    )


def _wins(kit) -> dict[str, tuple[int, int, str]]:
    """Applicant national id → (booking's account, seats, status), for every booking a draw gave."""
    rows = kit.call(
        lambda: db.session.execute(
            select(BookingApplicant.national_id, Booking.account_id, Booking.seats, Booking.status)
            .join(Booking, Booking.id == BookingApplicant.booking_id)
            .where(Booking.draw_entry_id.is_not(None))
        ).all()
    )
    return {r.national_id: (r.account_id, r.seats, r.status) for r in rows}


def test_a_guardian_enters_a_child_and_the_win_is_the_childs_seat(client, kit, make):
    release = Release(client, kit, make)
    draw_id = release.create().get_json()["draw_id"]
    mother, father = make.citizen(), make.citizen()
    child = make.minor(mother, father, age=9)

    own = _enter(release, draw_id, mother.id)
    theirs = _enter(release, draw_id, mother.id, child.national_id)
    assert own.status_code == theirs.status_code == 201, theirs.get_json()
    assert theirs.get_json()["applicant"] == child.national_id
    assert own.get_json()["applicant"] == mother.national_id
    twice = _enter(release, draw_id, father.id, child.national_id)  # one entry per person, whoever enters
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "already_entered"

    assert release.run(draw_id).status_code == 200
    assert _wins(kit) == {
        mother.national_id: (mother.id, 1, "held"),
        child.national_id: (mother.id, 1, "held"),
    }
    entries = client.get("/api/v1/me/draw-entries", headers=make.headers(mother)).get_json()
    assert sorted((e["applicant"], e["status"]) for e in entries) == sorted(
        [(mother.national_id, "won"), (child.national_id, "won")]
    )


def test_a_strangers_child_is_403_and_recorded_and_writes_no_entry(client, kit, make):
    release = Release(client, kit, make)
    draw_id = release.create().get_json()["draw_id"]
    parent = make.citizen()
    someone_elses = make.minor(make.citizen(), age=9)

    refused = _enter(release, draw_id, parent.id, someone_elses.national_id)

    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_a_dependent"
    assert kit.call(lambda: db.session.scalars(select(DrawEntry.id)).all()) == []
    events = kit.call(lambda: list(db.session.scalars(select(AbuseEvent))))
    assert [(e.rule, e.account_id, e.details["national_id"]) for e in events] == [
        ("not_a_dependent", parent.id, someone_elses.national_id)
    ]


def test_a_child_with_a_booking_of_the_group_is_refused_an_entry_but_the_parent_is_not(client, kit, make):
    release = Release(client, kit, make)
    draw_id = release.create().get_json()["draw_id"]
    parent = make.citizen()
    child = make.minor(parent, age=9)
    group = kit.make.fresh(type(release.offering), release.offering.id).service.group
    first_come = kit.offering(service_kw={"code": f"{group}.other", "group": group})
    kit.call(
        services.hold_slot,
        account_id=parent.id,
        slot_id=kit.slot(first_come).id,
        applicants=[child.national_id],
    )

    busy = _enter(release, draw_id, parent.id, child.national_id)

    assert busy.status_code == 409 and busy.get_json()["error"]["code"] == "active_booking_exists"
    assert _enter(release, draw_id, parent.id).status_code == 201


def test_withdrawing_the_childs_entry_leaves_the_parents(client, kit, make):
    release = Release(client, kit, make)
    draw_id = release.create().get_json()["draw_id"]
    parent = make.citizen()
    child = make.minor(parent, age=9)
    assert _enter(release, draw_id, parent.id).status_code == 201
    assert _enter(release, draw_id, parent.id, child.national_id).status_code == 201

    gone = client.delete(
        f"/api/v1/draws/{draw_id}/entries/me?applicant={child.national_id}", headers=make.headers(parent)
    )

    assert gone.status_code == 200 and gone.get_json()["applicant"] == child.national_id
    statuses = dict(
        kit.call(lambda: db.session.execute(select(DrawEntry.national_id, DrawEntry.status)).all())
    )
    assert statuses == {parent.national_id: "entered", child.national_id: "withdrawn"}


def test_winners_seated_one_by_one_still_get_their_own_person(client, kit, make):
    """A child booked elsewhere between the plan and the seating trips the batch: each winner is redone."""
    release = Release(client, kit, make)
    draw_id = release.create().get_json()["draw_id"]
    mother, father = make.citizen(), make.citizen()
    child, sibling = make.minor(mother, father, age=9), make.minor(mother, age=7)
    for applicant in (None, child.national_id, sibling.national_id):
        assert _enter(release, draw_id, mother.id, applicant).status_code == 201
    kit.call(draw_run._close_entries, draw_id, actor_id=None, actor_role="system")
    kit.call(draw_run._plan, draw_id)
    group = kit.make.fresh(type(release.offering), release.offering.id).service.group
    first_come = kit.offering(service_kw={"code": f"{group}.other", "group": group})
    kit.call(
        services.hold_slot,
        account_id=father.id,
        slot_id=kit.slot(first_come).id,
        applicants=[child.national_id],
    )

    assert release.run(draw_id).status_code == 200

    wins = _wins(kit)
    assert wins == {mother.national_id: (mother.id, 1, "held"), sibling.national_id: (mother.id, 1, "held")}
    lost = kit.call(
        lambda: db.session.scalar(
            select(DrawEntry.excluded_reason).where(DrawEntry.national_id == child.national_id)
        )
    )
    assert lost == "per_group"
    assert sum(kit.slot_state(s.id)[0] for s in release.slots) == 2
