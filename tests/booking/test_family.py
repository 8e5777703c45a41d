"""Family bookings (SPEC §10): a citizen books for themselves and their dependents, one seat each.

Every refusal writes nothing (no booking, no applicant row, no seat); a stranger's id leaves an abuse event.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import func, select

from app import clock
from app.accounts.models import Account
from app.extensions import db
from app.registry.models import Guardianship, RegistryPerson
from booking import seats, services
from booking.models import AbuseEvent, Booking, BookingApplicant, Slot

_kid = itertools.count(1)


def _make_kids(guardian_ids: list[int], n: int, *, age: int = 10, **person) -> list[str]:
    """`n` minors in the care of every account in `guardian_ids`; returns their national ids."""
    today = clock.now().date()
    guardians = [db.session.get(Account, g).national_id for g in guardian_ids]
    nids = []
    for _ in range(n):
        k = next(_kid)
        nid = f"66{k:08d}"
        values = dict(
            national_id=nid,
            full_name_ar=f"طفل {k}",
            full_name_en=f"Child {k}",
            date_of_birth=today.replace(year=today.year - age, day=min(today.day, 28)),
            passport_number=None,
            passport_expiry=None,
            residence_country="JO",
            disability=False,
        )
        values.update(person)
        db.session.add(RegistryPerson(**values))
        db.session.flush()
        for guardian in guardians:
            db.session.add(Guardianship(guardian_national_id=guardian, minor_national_id=nid))
        nids.append(nid)
    db.session.commit()
    return nids


def kids(kit, *guardians: int, n: int = 2, **person) -> list[str]:
    return kit.call(_make_kids, list(guardians), n, **person)


def nid_of(kit, account_id: int) -> str:
    return kit.make.fresh(Account, account_id).national_id


def _hold(client, headers, slot_id, applicants=None, **extra):
    body = {"slot_id": slot_id}
    if applicants is not None:
        body["applicants"] = applicants
    return client.post("/api/v1/bookings", json=body, headers={**headers, **extra})


def _counts(kit) -> tuple[int, int, int]:
    """(bookings, applicant rows, seats booked) in the whole database."""
    return kit.call(
        lambda: (
            db.session.scalar(select(func.count()).select_from(Booking)),
            db.session.scalar(select(func.count()).select_from(BookingApplicant)),
            db.session.scalar(select(func.coalesce(func.sum(Slot.booked), 0))),
        )
    )


def _offering_of(kit, slot):
    from app.catalogue.models import Offering

    return kit.call(lambda: db.session.get(Offering, slot.offering_id))


def _abuse(kit, rule: str) -> list[AbuseEvent]:
    return kit.call(lambda: list(db.session.scalars(select(AbuseEvent).where(AbuseEvent.rule == rule))))


@pytest.fixture
def family(kit):
    """A parent with two children, a slot of 5 seats, and the parent's headers."""
    parent = kit.citizen_id()
    children = kids(kit, parent, n=2)
    slot = kit.slot(kit.offering(), capacity=5)
    return parent, children, slot, kit.headers_for(parent)


# ------------------------------------------------------------------------------------------ booking


def test_a_family_booking_takes_one_seat_per_applicant_and_lists_them(client, kit, family):
    parent, children, slot, headers = family
    applicants = [nid_of(kit, parent), *children]

    held = _hold(client, headers, slot.id, applicants)

    assert held.status_code == 201, held.get_json()
    body = held.get_json()
    assert body["seats"] == 3
    assert [a["national_id"] for a in body["applicants"]] == applicants
    assert body["applicants"][1]["full_name"].startswith("Child ")
    assert kit.slot_state(slot.id) == (3, 5)
    ref = body["reference"]
    assert client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers).get_json()["seats"] == 3
    assert kit.slot_state(slot.id) == (3, 5)
    got = client.get(f"/api/v1/bookings/{ref}", headers=headers).get_json()
    assert [a["national_id"] for a in got["applicants"]] == applicants
    ics = client.get(f"/api/v1/bookings/{ref}/calendar.ics", headers=headers).get_data(as_text=True)
    unfolded = ics.replace("\r\n ", "")
    for nid in applicants:
        assert nid in unfolded


def test_without_applicants_the_citizen_books_alone_and_is_listed(client, kit, family):
    parent, _, slot, headers = family
    body = _hold(client, headers, slot.id).get_json()
    assert body["seats"] == 1
    assert [a["national_id"] for a in body["applicants"]] == [nid_of(kit, parent)]
    assert kit.slot_state(slot.id) == (1, 5)


def test_children_alone_then_the_parent_in_the_same_group(client, kit, family):
    """One active booking per group is per person: the parent's own is not blocked by the children's."""
    parent, children, slot, headers = family
    other_slot = kit.slot(_offering_of(kit, slot), capacity=5)
    ref = _hold(client, headers, slot.id, children).get_json()["reference"]
    assert client.post(f"/api/v1/bookings/{ref}/confirm", headers=headers).status_code == 200

    mine = _hold(client, headers, other_slot.id, [nid_of(kit, parent)])
    assert mine.status_code == 201, mine.get_json()
    mine_ref = mine.get_json()["reference"]
    assert client.post(f"/api/v1/bookings/{mine_ref}/confirm", headers=headers).status_code == 200
    again = _hold(client, headers, other_slot.id, [children[1]])
    assert again.status_code == 409
    error = again.get_json()["error"]
    assert error["code"] == "active_booking_exists"
    assert error["details"]["national_id"] == children[1]
    assert children[1] not in error["message"] and "Child" in error["message"]


def test_idempotent_replay_of_a_family_hold_takes_no_more_seats(client, kit, family):
    _parent, children, slot, headers = family
    key = {"Idempotency-Key": "family-1"}
    first = _hold(client, headers, slot.id, children, **key)
    second = _hold(client, headers, slot.id, children, **key)
    assert first.status_code == second.status_code == 201
    assert first.get_json()["reference"] == second.get_json()["reference"]
    assert kit.slot_state(slot.id) == (2, 5)


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "applicants",
    [
        pytest.param(lambda own, kin: [own, *kin, "5999999991", "5999999992", "5999999993"], id="six"),
        pytest.param(lambda own, kin: [own, kin[0], kin[0]], id="duplicate"),
        pytest.param(lambda own, kin: [], id="empty"),
        pytest.param(lambda own, kin: ["12345"], id="not-a-national-id"),
    ],
)
def test_malformed_applicant_lists_are_422_naming_the_field(client, kit, family, applicants):
    parent, children, slot, headers = family
    before = _counts(kit)
    answer = _hold(client, headers, slot.id, applicants(nid_of(kit, parent), children))
    assert answer.status_code == 422, answer.get_json()
    assert "applicants" in answer.get_json()["error"]["details"]["fields"]
    assert _counts(kit) == before


def test_an_adult_other_than_the_citizen_is_422(client, kit, family):
    parent, _children, slot, headers = family
    adult = kit.citizen_id()
    before = _counts(kit)
    answer = _hold(client, headers, slot.id, [nid_of(kit, parent), nid_of(kit, adult)])
    assert answer.status_code == 422
    assert "applicants" in answer.get_json()["error"]["details"]["fields"]
    assert _counts(kit) == before


def test_a_child_who_is_18_by_the_slot_is_not_a_dependent_for_it(client, kit):
    parent = kit.citizen_id()
    slot = kit.slot(kit.offering(), capacity=5, hours_ahead=24 * 5)
    slot_day = kit.make.fresh(type(slot), slot.id).local_date
    born = slot_day.replace(year=slot_day.year - 18) - dt.timedelta(days=1)  # 17 today, 18 on the day
    (almost_adult,) = kids(kit, parent, n=1, date_of_birth=born)
    assert clock.now().date() < born.replace(year=born.year + 18)
    before = _counts(kit)
    answer = _hold(client, kit.headers_for(parent), slot.id, [almost_adult])
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"]["national_id"] == almost_adult
    assert _counts(kit) == before


@pytest.mark.parametrize("whose", ["another_family", "unknown"])
def test_a_strangers_national_id_is_403_and_an_abuse_event(client, kit, family, whose):
    parent, children, slot, headers = family
    stranger = kids(kit, kit.citizen_id(), n=1)[0] if whose == "another_family" else "5000999999"
    before = _counts(kit)
    answer = _hold(client, headers, slot.id, [nid_of(kit, parent), children[0], stranger])
    assert answer.status_code == 403
    error = answer.get_json()["error"]
    assert error["code"] == "not_a_dependent"
    assert error["details"]["national_id"] == stranger
    assert _counts(kit) == before
    events = _abuse(kit, "not_a_dependent")
    assert len(events) == 1 and events[0].account_id == parent
    assert events[0].details["national_id"] == stranger


def test_a_family_larger_than_the_seats_left_gets_409_with_the_seats_available(client, kit):
    parent = kit.citizen_id()
    children = kids(kit, parent, n=2)
    slot = kit.slot(kit.offering(), capacity=4)
    other = kit.citizen_id()
    assert _hold(client, kit.headers_for(other), slot.id, [nid_of(kit, other)]).status_code == 201
    before = _counts(kit)

    answer = _hold(
        client, kit.headers_for(parent), slot.id, [nid_of(kit, parent), *children, *kids(kit, parent, n=1)]
    )

    assert answer.status_code == 409
    error = answer.get_json()["error"]
    assert error["code"] == "slot_full" and error["details"]["available"] == 3
    assert _counts(kit)[0:2] == before[0:2]
    assert kit.slot_state(slot.id) == (1, 4)
    assert _hold(client, kit.headers_for(parent), slot.id, children).status_code == 201  # two still fit


def test_eligibility_holds_for_each_child(client, kit):
    parent = kit.citizen_id()
    offering = kit.offering(service_kw={"code": "passport.issue", "eligibility": "passport_issue"})
    slot = kit.slot(offering, capacity=5)
    (without,) = kids(kit, parent, n=1)
    (with_passport,) = kids(kit, parent, n=1, passport_expiry=clock.now().date() + dt.timedelta(days=900))
    before = _counts(kit)

    answer = _hold(client, kit.headers_for(parent), slot.id, [without, with_passport])

    assert answer.status_code == 403
    error = answer.get_json()["error"]
    assert error["code"] == "not_eligible"
    assert error["details"]["national_id"] == with_passport
    assert error["details"]["reason"] == "valid_passport_held"
    assert _counts(kit) == before
    assert _hold(client, kit.headers_for(parent), slot.id, [without]).status_code == 201


def test_a_child_booked_by_one_guardian_is_refused_to_the_other(client, kit):
    mother, father = kit.citizens(2)
    (child,) = kids(kit, mother, father, n=1)
    offering = kit.offering()
    first, second = kit.slot(offering, capacity=5), kit.slot(offering, capacity=5)
    assert _hold(client, kit.headers_for(mother), first.id, [child]).status_code == 201
    before = _counts(kit)

    answer = _hold(client, kit.headers_for(father), second.id, [nid_of(kit, father), child])

    assert answer.status_code == 409
    assert answer.get_json()["error"]["details"]["national_id"] == child
    assert _counts(kit) == before


# ------------------------------------------------------------------------------ seats move together


def test_cancel_frees_every_seat_of_a_family(app, client, kit, family):
    app.config["CANCEL_RELEASE_DELAY_MINUTES"] = 0
    parent, children, slot, headers = family
    ref = _hold(client, headers, slot.id, [nid_of(kit, parent), *children]).get_json()["reference"]
    assert kit.slot_state(slot.id) == (3, 5)
    cancelled = client.post(f"/api/v1/bookings/{ref}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert kit.slot_state(slot.id) == (0, 5)
    # The children are free to be booked again, by either guardian.
    assert _hold(client, headers, slot.id, children).status_code == 201


def test_an_expired_family_hold_frees_every_seat(client, kit, family):
    parent, children, slot, headers = family
    ref = _hold(client, headers, slot.id, [nid_of(kit, parent), *children]).get_json()["reference"]
    clock.shift(dt.timedelta(seconds=301))
    assert kit.call(seats.release_due_seats) == 3
    assert kit.slot_state(slot.id) == (0, 5)
    assert kit.bookings(reference=ref)[0].status == "expired"
    rows = kit.call(lambda: list(db.session.scalars(select(BookingApplicant.active))))
    assert rows == [False, False, False]


def test_an_expired_hold_of_a_child_does_not_block_the_next_booking(client, kit, family):
    _parent, children, slot, headers = family
    _hold(client, headers, slot.id, children)
    clock.shift(dt.timedelta(seconds=301))
    again = _hold(client, headers, slot.id, children)
    assert again.status_code == 201, again.get_json()
    assert kit.slot_state(slot.id) == (2, 5)


def test_reschedule_moves_all_seats_or_none(client, kit, family):
    parent, children, slot, headers = family
    offering = _offering_of(kit, slot)
    roomy, tight = kit.slot(offering, capacity=3), kit.slot(offering, capacity=2)
    ref = _hold(client, headers, slot.id, [nid_of(kit, parent), *children]).get_json()["reference"]

    refused = client.post(f"/api/v1/bookings/{ref}/reschedule", json={"slot_id": tight.id}, headers=headers)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["details"]["available"] == 2
    assert (kit.slot_state(slot.id), kit.slot_state(tight.id)) == ((3, 5), (0, 2))

    moved = client.post(f"/api/v1/bookings/{ref}/reschedule", json={"slot_id": roomy.id}, headers=headers)
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["seats"] == 3
    assert (kit.slot_state(slot.id), kit.slot_state(roomy.id)) == ((0, 5), (3, 3))


# ------------------------------------------------------------------------------------------- races


def _family_hold(args):
    account_id, slot_id, applicants = args
    return services.hold_slot(account_id=account_id, slot_id=slot_id, applicants=applicants).reference


@pytest.mark.postgres_only
def test_20_families_of_3_racing_for_10_seats_never_oversell_nor_split(kit):
    slot = kit.slot(kit.offering(), capacity=10)
    parents = kit.citizens(20)
    families = [(p, slot.id, [nid_of(kit, p), *kids(kit, p, n=2)]) for p in parents]

    results = kit.race(_family_hold, families, workers=20)

    won = [r for r in results if isinstance(r, str)]
    assert len(won) == 3
    assert {r.code for r in results if not isinstance(r, str)} == {"slot_full"}
    assert kit.slot_state(slot.id) == (9, 10)
    seats = kit.call(
        lambda: db.session.execute(select(Booking.seats, func.count()).group_by(Booking.seats)).all()
    )
    assert [tuple(s) for s in seats] == [(3, 3)]
    applicants = kit.call(lambda: db.session.scalar(select(func.count()).select_from(BookingApplicant)))
    assert applicants == 9


@pytest.mark.postgres_only
def test_two_guardians_booking_the_same_child_at_once_get_one_booking(kit):
    offering = kit.offering()
    pairs = [kit.citizens(2) for _ in range(10)]
    attempts = []
    for mother, father in pairs:
        (child,) = kids(kit, mother, father, n=1)
        attempts += [
            (mother, kit.slot(offering, capacity=5).id, [child]),
            (father, kit.slot(offering, capacity=5).id, [nid_of(kit, father), child]),
        ]

    results = kit.race(_family_hold, attempts, workers=20)

    for n in range(10):
        pair = results[2 * n : 2 * n + 2]
        assert len([r for r in pair if isinstance(r, str)]) == 1, pair
        refusal = next(r for r in pair if not isinstance(r, str))
        assert refusal.code == "active_booking_exists"
    active = kit.call(
        lambda: db.session.execute(
            select(BookingApplicant.national_id, func.count())
            .where(BookingApplicant.active.is_(True))
            .group_by(BookingApplicant.national_id)
        ).all()
    )
    assert all(count == 1 for _, count in active)
    assert sum(kit.slot_state(a[1])[0] for a in attempts) == sum(
        len(a[2]) for a, r in zip(attempts, results, strict=True) if isinstance(r, str)
    )
