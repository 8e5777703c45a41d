"""HTTP endpoints of the booking domain: availability, bookings, calendar files and the abuse console."""

from __future__ import annotations

import threading

from flask import current_app, g, request
from flask_smorest import Blueprint
from werkzeug.exceptions import TooManyRequests

from app.contract import refusals
from app.errors import http_error_response
from app.extensions import client_ip
from app.idempotency import idempotent
from app.pagination import SelectPage
from app.qr import qr_svg
from app.ratelimit import limit_by, limit_holds, limit_search
from app.security import auth_required, current_principal, require_principal
from booking import abuse, availability, draws, errors, recovery, references, services
from booking.schemas import (
    AbuseEventQuerySchema,
    AbuseEventSchema,
    AvailableSlotSchema,
    BookingQuerySchema,
    BookingSchema,
    HoldSchema,
    LiftSuspensionSchema,
    RescheduleSchema,
    SlotQuerySchema,
    SuspensionSchema,
)

bp = Blueprint("booking", __name__, url_prefix="/api/v1", description="Booking")

APP_CHECK_HEADER = "X-Firebase-AppCheck"
_firebase_lock = threading.Lock()
DEVICE_HEADER = "X-Device-Id"


def _device_id() -> str | None:
    return request.headers.get(DEVICE_HEADER, "").strip()[:128] or None


def _phone_identity() -> str | None:
    """Holds per phone number: several accounts can share one phone (None for anonymous callers).

    The access token carries a keyed digest of the phone (no read); tokens without it (issued before it
    existed) look the account's phone up once.
    """
    if "booking_phone" not in g:
        try:
            principal = current_principal()
        except Exception:  # an invalid token is refused by the view; it is no identity here
            principal = None
        if principal is not None and principal.phone_key:
            g.booking_phone = f"phone:{principal.phone_key}"
            return g.booking_phone
        from app.accounts.models import Account
        from app.extensions import db
        from app.tokens import phone_key

        account = db.session.get(Account, principal.id) if principal and principal.role == "citizen" else None
        phone = account.phone if account is not None else None
        g.booking_phone = f"phone:{phone_key(phone)}" if phone else None
    return g.booking_phone


def _limit_holds_by_phone():
    return limit_by(_phone_identity, "RATELIMIT_HOLDS", "holds-phone")


def _require_app_check(account_id: int) -> None:
    """With APP_CHECK_REQUIRED, holds and confirmations need a valid Firebase App Check token."""
    if not current_app.config["APP_CHECK_REQUIRED"]:
        return
    from booking.app_check import AppCheckRejected, verify_app_check_token

    try:
        verify_app_check_token(request.headers.get(APP_CHECK_HEADER), app=_firebase_app())
    except AppCheckRejected as rejected:
        if rejected.reason == "unavailable":
            raise errors.AppCheckUnavailable() from None
        refusal = errors.AppCheckFailed(details={"reason": rejected.reason})
        abuse.record_abuse_event(
            rule="app_check",
            reason=rejected.reason,
            account_id=account_id,
            device_id=_device_id(),
            ip=client_ip(),
            details={"path": request.path},
        )
        raise refusal from None


def _firebase_app():
    """The Firebase App that verifies App Check tokens (tests put their own in app.extensions)."""
    injected = current_app.extensions.get("app_check_firebase_app")
    if injected is not None:
        return injected
    import firebase_admin

    name = "sanad-app-check"
    with _firebase_lock:
        try:
            return firebase_admin.get_app(name)
        except ValueError:
            pass
        project = current_app.config["APP_CHECK_PROJECT_NUMBER"]
        # Verifying App Check tokens needs only the project (the audience) and Google's public keys.
        return firebase_admin.initialize_app(_public_keys_only(), {"projectId": project}, name=name)


def _public_keys_only():
    """A credential that is never used: App Check verification fetches only Google's public keys."""
    from firebase_admin import credentials

    class PublicKeysOnly(credentials.Base):
        def get_credential(self):
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()

    return PublicKeysOnly()


def _tripped(error, citizen: int | None) -> str:
    """Which limit a 429 tripped, as `scope:key` (the caller and path when Flask-Limiter does not say)."""
    limit = getattr(error, "limit", None)
    try:
        scope = limit.scope if isinstance(limit.scope, str) else ""
        return f"{scope}:{limit.key_func()}"
    except Exception:  # not a Flask-Limiter limit (or one without a key function)
        caller = f"acct:{citizen}" if citizen is not None else f"ip:{client_ip()}"
        return f"{request.path}:{caller}"


@bp.errorhandler(TooManyRequests)
def _rate_limited(error):
    """A 429 on a booking endpoint is an abuse signal too: record it, then answer as everywhere else."""
    try:
        principal = current_principal()
    except Exception:  # an invalid token is still rate limited by IP
        principal = None
    citizen = principal.id if principal is not None and principal.role == "citizen" else None
    # A flood is recorded once per limit that tripped (its scope and key: this account, this device,
    # this IP, this phone) a minute, not once per refused request: the refusal path must not write to
    # PostgreSQL at the flood's rate, and one IP flooding with many accounts is one record, not many.
    if not abuse.first_in_window(f"abuse:rate_limit:{_tripped(error, citizen)}", seconds=60):
        return http_error_response(error)
    abuse.record_abuse_event(
        rule="rate_limit",
        reason="rate_limited",
        account_id=citizen,
        device_id=_device_id(),
        ip=client_ip(),
        details={"path": request.path, "limit": str(getattr(getattr(error, "limit", None), "limit", ""))},
    )
    return http_error_response(error)


# ------------------------------------------------------------------------------------- availability


@bp.route("/centres/<string:centre_id>/slots")
@refusals(errors.OutsideHorizon)
@limit_search()
@bp.arguments(SlotQuerySchema(), location="query")  # one instance: not built again for every search
@bp.response(
    200,
    AvailableSlotSchema(many=True),
    headers={
        availability.NEXT_FROM_HEADER: {
            "description": f"Only when the answer was cut at {availability.SLOTS_PER_ANSWER} slots "
            "(at the end of a day): the day to search `from` for the rest.",
            "schema": {"type": "string", "format": "date"},
        }
    },
)
def list_slots(args, centre_id):
    """Slots with seats left for a service at a centre, inside the cut-off and the caller's horizon.

    Without `from`, from now; without `to`, to the end of the caller's horizon (RESIDENT_HORIZON_DAYS,
    or EXPATRIATE_HORIZON_DAYS abroad). A `from` past it is 422 `outside_horizon`, naming the last day.
    """
    principal = current_principal()
    account_id = principal.id if principal is not None and principal.role == "citizen" else None
    body, next_from = availability.available_slots_json(
        centre_id=centre_id,
        service_code=args["service"],
        date_from=args.get("date_from"),
        date_to=args.get("date_to"),
        account_id=account_id,
    )
    # Already JSON (the schema above documents it): flask-smorest passes a Response through as it is.
    response = current_app.response_class(body, mimetype=current_app.json.mimetype)
    if next_from:
        response.headers[availability.NEXT_FROM_HEADER] = next_from
    return response


# ----------------------------------------------------------------------------------------- bookings


def _orphan_hold(claimed_at):
    """The hold a replayed request's first attempt wrote before it died (answered as that attempt's 201)."""
    principal = current_principal()
    body = request.get_json(silent=True)
    slot_id = body.get("slot_id") if isinstance(body, dict) else None
    if principal is None or principal.role != "citizen" or type(slot_id) is not int:
        return None
    booking = recovery.find_orphan_hold(account_id=principal.id, slot_id=slot_id, since=claimed_at)
    return (BookingSchema().dump(booking), 201) if booking is not None else None


# One instance each for the busiest writes: a schema class here is built again on every request.
HOLD_SCHEMA, BOOKING_SCHEMA = HoldSchema(), BookingSchema()


@bp.route("/bookings", methods=["POST"])
@refusals(
    errors.NotADependent,
    errors.SlotNotFound,
    errors.SlotFull,
    errors.OutsideHorizon,
    errors.ActiveBookingExists,
    errors.QuotaExceeded,
    errors.HoldLimit,
    errors.BookingSuspended,
    errors.NotEligible,
    errors.DeviceLimit,
    errors.AccountNotVerified,
    errors.AppCheckFailed,
    errors.AppCheckUnavailable,
)
@idempotent(recover=_orphan_hold)
@limit_holds()
@_limit_holds_by_phone()
@auth_required("citizen")
@bp.arguments(HOLD_SCHEMA)
@bp.response(201, BOOKING_SCHEMA)
@bp.doc(
    parameters=[
        {
            "in": "header",
            "name": DEVICE_HEADER,
            "schema": {"type": "string", "maxLength": 128},
            "required": False,
        },
        {"in": "header", "name": APP_CHECK_HEADER, "schema": {"type": "string"}, "required": False},
        {
            "in": "header",
            "name": "Idempotency-Key",
            "schema": {"type": "string", "maxLength": 255},
            "required": False,
            "description": "Replays the first answer for the same key and body (24 h).",
        },
    ]
)
def hold(args):
    """Hold a seat for HOLD_SECONDS, one per applicant, all or none; confirm before `hold_expires_at`.

    `applicants` (default: the citizen alone) lists the citizen and/or the minors they are a guardian of
    on the slot's day: anyone else is 403 `not_a_dependent`, an adult other than the citizen 422. Each
    applicant must be eligible and have no other active booking of the service group (409 naming them);
    too few seats left is 409 `slot_full` with `details.available`.
    """
    principal = require_principal("citizen")
    _require_app_check(principal.id)
    return services.hold_slot(  # 409 in_draw on a day a draw gives (after the sold-out gate)
        account_id=principal.id,
        slot_id=args["slot_id"],
        applicants=args.get("applicants"),
        device_id=_device_id(),
        ip=client_ip(),
    )


@bp.route("/bookings")
@auth_required("citizen")
@bp.arguments(BookingQuerySchema, location="query")
@bp.response(200, BookingSchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_bookings(args):
    """The citizen's own bookings, newest first."""
    principal = require_principal("citizen")
    return services.list_bookings(account_id=principal.id, status=args.get("status"))


@bp.route("/bookings/<string:reference>")
@auth_required("citizen")
@bp.response(200, BookingSchema)
def get_booking(reference):
    """One of the citizen's bookings."""
    return services.get_booking(account_id=require_principal("citizen").id, reference=reference)


@bp.route("/bookings/<string:reference>/confirm", methods=["POST"])
@refusals(errors.HoldExpired, errors.InvalidBookingState, errors.AppCheckFailed, errors.AppCheckUnavailable)
@limit_holds()
@auth_required("citizen")
@bp.response(200, BOOKING_SCHEMA)
def confirm(reference):
    """Confirm a hold (410 `hold_expired` once it ran out)."""
    principal = require_principal("citizen")
    _require_app_check(principal.id)
    return services.confirm_booking(account_id=principal.id, reference=reference)


@bp.route("/bookings/<string:reference>/cancel", methods=["POST"])
@refusals(errors.InvalidBookingState)
@auth_required("citizen")
@bp.response(200, BookingSchema)
def cancel(reference):
    """Cancel a booking; its seat returns to sale after a delay."""
    return services.cancel_booking(account_id=require_principal("citizen").id, reference=reference)


@bp.route("/bookings/<string:reference>/reschedule", methods=["POST"])
@refusals(
    errors.SlotNotFound,
    errors.SlotFull,
    errors.OutsideHorizon,
    errors.SameSlot,
    errors.WrongService,
    errors.InvalidBookingState,
    errors.HoldExpired,
)
@limit_holds()
@auth_required("citizen")
@bp.arguments(RescheduleSchema)
@bp.response(200, BookingSchema)
def reschedule(args, reference):
    """Move a booking to another slot of the same service, atomically."""
    principal = require_principal("citizen")
    draws.check_first_come(slot_id=args["slot_id"], account_id=principal.id)  # 409 in_draw
    return services.reschedule_booking(account_id=principal.id, reference=reference, slot_id=args["slot_id"])


@bp.route("/bookings/<string:reference>/calendar.ics")
@auth_required("citizen")
@bp.response(200, {"type": "string"}, content_type="text/calendar")
def calendar(reference):
    """The booking as an iCalendar file, in the centre's zone."""
    body = services.booking_calendar(account_id=require_principal("citizen").id, reference=reference)
    response = current_app.response_class(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{references.normalise_reference(reference)}.ics"'
    )
    return response


@bp.route("/bookings/<string:reference>/qr.svg")
@auth_required("citizen")
@bp.response(200, {"type": "string"}, content_type="image/svg+xml")
def booking_qr(reference):
    """A QR code of the booking's reference, for the centre's kiosk to scan at check-in."""
    booking = services.get_booking(account_id=require_principal("citizen").id, reference=reference)
    response = current_app.response_class(qr_svg(booking.reference), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


# -------------------------------------------------------------------------------------------- admin


@bp.route("/admin/abuse-events")
@auth_required("admin")
@bp.arguments(AbuseEventQuerySchema, location="query")
@bp.response(200, AbuseEventSchema(many=True))
@bp.paginate(SelectPage, page_size=50, max_page_size=200)
def list_abuse_events(args):
    """Refusals and sanctions for abuse, newest first, filtered by citizen, rule, device, IP or time."""
    return abuse.list_abuse_events(**args)


@bp.route("/admin/citizens/<string:national_id>/suspensions")
@auth_required("admin")
@bp.response(200, SuspensionSchema(many=True))
def list_suspensions(national_id):
    """A citizen's booking suspensions, newest first."""
    return abuse.list_suspensions(national_id=national_id)


@bp.route("/admin/citizens/<string:national_id>/lift-suspension", methods=["POST"])
@auth_required("admin")
@bp.arguments(LiftSuspensionSchema)
@bp.response(200, SuspensionSchema(many=True))
def lift_suspension(args, national_id):
    """Lift a citizen's suspensions in force (all, or one kind); answers those lifted."""
    principal = require_principal("admin")
    return abuse.lift_suspension(national_id=national_id, admin_id=principal.id, kind=args.get("kind"))
