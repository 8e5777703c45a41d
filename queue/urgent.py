"""Urgent passports: a citizen's request, a supervisor's decision (an urgent booking from the day's
reserve, or a refusal saying why), each decision in the centre's audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.audit import AuditEntry, record_audit
from app.catalogue.services import centre_today, get_centre
from app.dialect import for_update
from app.errors import NotFound
from app.extensions import db
from app.registry.services import list_dependents
from app.security import Principal, require_centre
from booking.errors import NotADependent
from notifications.services import notify_citizen

from .errors import (
    InvalidDate,
    UrgentAlreadyDecided,
    UrgentNotAllowed,
    UrgentQuotaExceeded,
    UrgentRequestPending,
)
from .models import UrgentRequest
from .services import offered_service

URGENT_SERVICE_GROUP = "passport"


def _approved_recently(account_id: int, now: dt.datetime) -> int:
    window = dt.timedelta(days=current_app.config["URGENT_WINDOW_DAYS"])
    return db.session.scalar(
        select(func.count())
        .select_from(UrgentRequest)
        .where(
            UrgentRequest.account_id == account_id,
            UrgentRequest.status.in_(("approved", "used")),
            UrgentRequest.decided_at >= now - window,
        )
    )


def create_urgent_request(
    *,
    account_id: int,
    centre_id: str,
    service_code: str,
    reason_code: str,
    travel_date: dt.date,
    details: str,
    applicant: str | None = None,
) -> UrgentRequest:
    """A citizen asks for an urgent passport: one pending at a time, a yearly cap on approvals.

    `applicant` names a dependent the passport is for (a minor the citizen is a guardian of on the travel
    date); anyone else is 403 `not_a_dependent`, recorded as an abuse event.
    """
    centre = get_centre(centre_id)
    service = offered_service(centre_id, service_code)
    if service.group != URGENT_SERVICE_GROUP:
        raise UrgentNotAllowed(details={"service": service_code})
    if travel_date < centre_today(centre):
        raise InvalidDate(details={"travel_date": travel_date.isoformat()})
    applicant = _dependent_applicant(account_id, applicant, on=travel_date)
    now = clock.now()
    cap = current_app.config["URGENT_MAX_APPROVED"]
    if _approved_recently(account_id, now) >= cap:
        raise UrgentQuotaExceeded(details={"limit": cap, "days": current_app.config["URGENT_WINDOW_DAYS"]})
    urgent_request = UrgentRequest(
        account_id=account_id,
        centre_id=centre_id,
        service_code=service_code,
        reason_code=reason_code,
        travel_date=travel_date,
        details=details,
        status="pending",
        created_at=now,
        applicant_national_id=applicant,
    )
    db.session.add(urgent_request)
    try:
        db.session.commit()
    except IntegrityError:
        # The partial unique index holds "one pending per citizen", whatever the concurrency.
        db.session.rollback()
        raise UrgentRequestPending() from None
    return urgent_request


def _dependent_applicant(account_id: int, applicant: str | None, *, on: dt.date) -> str | None:
    """The dependent an urgent request is for (None: the citizen themselves)."""
    from app.accounts.models import Account

    own = db.session.scalar(select(Account.national_id).where(Account.id == account_id))
    if applicant is None or applicant == own:
        return None
    if applicant in {ward.national_id for ward in list_dependents(guardian_national_id=own, on=on)}:
        return applicant
    db.session.rollback()
    from booking.abuse import record_abuse_event

    record_abuse_event(
        rule="not_a_dependent",
        reason="not_a_dependent",
        account_id=account_id,
        details={"national_id": applicant, "path": "urgent_request"},
    )
    raise NotADependent(details={"national_id": applicant})


def list_my_urgent_requests(*, account_id: int):
    """A citizen's urgent requests, newest first (a select for pagination)."""
    return (
        select(UrgentRequest).where(UrgentRequest.account_id == account_id).order_by(UrgentRequest.id.desc())
    )


def get_my_urgent_request(*, request_id: int, account_id: int) -> UrgentRequest:
    """One of the citizen's urgent requests (anyone else's is 404)."""
    urgent_request = db.session.get(UrgentRequest, request_id)
    if urgent_request is None or urgent_request.account_id != account_id:
        raise NotFound()
    return urgent_request


def list_centre_urgent_requests(*, centre_id: str, status: str | None, principal: Principal):
    """A centre's urgent requests for its supervisors, oldest pending first (a select for pagination)."""
    get_centre(centre_id)
    require_centre(principal, centre_id)
    query = select(UrgentRequest).where(UrgentRequest.centre_id == centre_id)
    if status:
        query = query.where(UrgentRequest.status == status)
    return query.order_by(UrgentRequest.created_at, UrgentRequest.id)


def _pending_request_for(request_id: int, principal: Principal) -> UrgentRequest:
    urgent_request = db.session.scalar(
        for_update(select(UrgentRequest).where(UrgentRequest.id == request_id))
    )
    if urgent_request is None:
        raise NotFound()
    require_centre(principal, urgent_request.centre_id)
    if urgent_request.status != "pending":
        db.session.rollback()
        raise UrgentAlreadyDecided(details={"status": urgent_request.status})
    return urgent_request


def _decide(
    urgent_request: UrgentRequest,
    *,
    status: str,
    principal: Principal,
    now: dt.datetime,
    note: str | None,
    audited: dict[str, Any] | None = None,
    told: dict[str, Any],
    **values: Any,
) -> UrgentRequest:
    """Move a pending request to its decision (the WHERE makes two supervisors' clicks count once), with
    its audit entry (`audited`: details) and the citizen's notice (`told`: what it says besides the
    request), and commit."""
    decided = db.session.execute(
        update(UrgentRequest)
        .where(UrgentRequest.id == urgent_request.id, UrgentRequest.status == "pending")
        .values(status=status, decided_by=principal.id, decided_at=now, note=note, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if decided != 1:
        db.session.rollback()
        raise UrgentAlreadyDecided()
    record_audit(
        actor_id=principal.id,
        actor_role=principal.role,
        action=f"urgent_request.{status}",
        subject_type="urgent_request",
        subject_id=urgent_request.id,
        centre_id=urgent_request.centre_id,
        reason=note,
        details=audited,
    )
    notify_citizen(
        account_id=urgent_request.account_id,
        kind=f"urgent_{status}",
        params={
            "centre_id": urgent_request.centre_id,
            "service_code": urgent_request.service_code,
            **told,
            "request_id": urgent_request.id,
        },
        dedupe_key=f"urgent_decided:{urgent_request.id}",
    )
    db.session.commit()
    return db.session.get(UrgentRequest, urgent_request.id, populate_existing=True)


def approve_urgent_request(
    *, request_id: int, local_date: dt.date, note: str | None, principal: Principal
) -> UrgentRequest:
    """A supervisor approves for a date: an urgent booking from that day's reserve, over slot capacity."""
    urgent_request = _pending_request_for(request_id, principal)
    centre = get_centre(urgent_request.centre_id)
    if local_date < centre_today(centre):
        db.session.rollback()
        raise InvalidDate(details={"date": local_date.isoformat()})
    now = clock.now()
    cap = current_app.config["URGENT_MAX_APPROVED"]
    if _approved_recently(urgent_request.account_id, now) >= cap:
        db.session.rollback()
        raise UrgentQuotaExceeded(details={"limit": cap, "days": current_app.config["URGENT_WINDOW_DAYS"]})
    from booking import services as booking

    try:
        created = booking.create_urgent_booking(
            account_id=urgent_request.account_id,
            centre_id=urgent_request.centre_id,
            service_code=urgent_request.service_code,
            local_date=local_date,
            applicant_national_id=urgent_request.applicant_national_id,
        )
    except Exception:
        db.session.rollback()
        raise
    reference = getattr(created, "reference", None)
    return _decide(
        urgent_request,
        status="approved",
        principal=principal,
        now=now,
        note=note,
        audited={"date": local_date.isoformat(), "booking_id": created.id, "reference": reference},
        told={"date": local_date.isoformat(), "note": note or "", "reference": reference},
        approved_date=local_date,
        booking_id=created.id,
    )


def reject_urgent_request(*, request_id: int, note: str, principal: Principal) -> UrgentRequest:
    """A supervisor turns an urgent request down, saying why."""
    urgent_request = _pending_request_for(request_id, principal)
    return _decide(
        urgent_request,
        status="rejected",
        principal=principal,
        now=clock.now(),
        note=note,
        told={"note": note},
    )


def list_audit_entries(*, centre_id: str, principal: Principal):
    """A centre's audit trail, newest first (a select for pagination)."""
    get_centre(centre_id)
    require_centre(principal, centre_id)
    return select(AuditEntry).where(AuditEntry.centre_id == centre_id).order_by(AuditEntry.id.desc())
