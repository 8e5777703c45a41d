"""HTTP endpoints of the ticket queue (imported as `ticketing.routes`), and the hall display page."""

from __future__ import annotations

from flask import Blueprint as PageBlueprint
from flask import Response, abort, current_app, render_template, request, stream_with_context
from flask_smorest import Blueprint

from app.contract import refusals
from app.errors import NotFound
from app.extensions import client_ip, db
from app.idempotency import idempotent
from app.metrics import SSE_STREAMS
from app.pagination import SelectPage
from app.ratelimit import limit_public_reads
from app.security import (
    CentreForbidden,
    InvalidToken,
    auth_required,
    require_centre,
    require_principal,
)
from app.tokens import DISPLAY_TOKEN_PREFIX
from booking.errors import (
    BookingNotConfirmed,
    CheckInWindow,
    InvalidBookingState,
    NotADependent,
    UrgentReserveExhausted,
)

from . import counters, services, streams, urgent
from .errors import (
    ActiveTicketExists,
    AlreadyAtCounter,
    CentreClosed,
    CounterInUse,
    CounterNotOpen,
    CounterPaused,
    CounterTaken,
    InvalidDate,
    RatingNotAllowed,
    RemoteTicketsDisabled,
    ServiceNotOffered,
    ServiceNotServed,
    TakeoverNotAllowed,
    TicketInService,
    TicketState,
    UrgentAlreadyDecided,
    UrgentNotAllowed,
    UrgentQuotaExceeded,
    UrgentRequestPending,
    VisitServiceNotOffered,
)
from .schemas import (
    ApproveSchema,
    AuditEntrySchema,
    CheckInSchema,
    CounterOpenSchema,
    CounterPauseSchema,
    CounterSessionSchema,
    CounterStateSchema,
    FloorSchema,
    PublicTicketSchema,
    QueueSnapshotSchema,
    RatingSchema,
    RejectSchema,
    StaffUrgentRequestSchema,
    StatsQuerySchema,
    StatsSchema,
    TicketCreateSchema,
    TicketSchema,
    TransferSchema,
    UrgentRequestCreateSchema,
    UrgentRequestSchema,
    UrgentStatusQuerySchema,
    UrgentTicketCreateSchema,
)
from .stats import centre_stats

bp = Blueprint("ticketing", __name__, url_prefix="/api/v1", description="Queue")
pages_bp = PageBlueprint(
    "ticketing_pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/ticketing",
)


# --------------------------------------------------------------------------------------- tickets


@bp.route("/centres/<string:centre_id>/tickets", methods=["POST"])
@refusals(CentreClosed, ServiceNotOffered, VisitServiceNotOffered, RemoteTicketsDisabled, ActiveTicketExists)
@idempotent
@auth_required("kiosk", "staff", "citizen")
@bp.arguments(TicketCreateSchema)
@bp.response(201, TicketSchema)
def issue_ticket(args, centre_id):
    """Take a ticket: a kiosk or clerk of the centre (walk-in), or a citizen where remote tickets are on.

    Only while the centre is open: otherwise `centre_closed`, with `details.opens_at` (when it next opens,
    in the centre's offset; null when no opening is scheduled in the next two weeks).

    `services` (1–4, in order) gives one ticket for several services of one visit: it waits in the first
    one's queue, and completing each puts it in the next one's with the same number and issue time.
    """
    principal = require_principal()
    visit = {"service_code": args.get("service"), "services": args.get("services")}
    if principal.role == "citizen":
        ticket = services.issue_remote_ticket(centre_id=centre_id, account_id=principal.id, **visit)
    else:
        require_centre(principal, centre_id)
        ticket = services.issue_walk_in_ticket(centre_id=centre_id, vulnerable=args["vulnerable"], **visit)
    return services.with_position(ticket)


@bp.route("/centres/<string:centre_id>/check-in", methods=["POST"])
@refusals(CentreClosed, CheckInWindow, BookingNotConfirmed, InvalidBookingState)
@idempotent
@auth_required("kiosk", "staff")
@bp.arguments(CheckInSchema)
@bp.response(201, TicketSchema)
def check_in_at_centre(args, centre_id):
    """A kiosk or clerk checks a booking in by reference (or QR); a late visitor gets a walk-in ticket."""
    require_centre(require_principal(), centre_id)
    ticket = services.check_in_booking(reference=args["reference"], centre_id=centre_id, allow_late=True)
    return services.with_position(ticket)


@bp.route("/bookings/<string:reference>/check-in", methods=["POST"])
@refusals(CentreClosed, CheckInWindow, BookingNotConfirmed, InvalidBookingState)
@idempotent
@auth_required("citizen")
@bp.response(201, TicketSchema)
def check_in_in_app(reference):
    """The citizen checks in at the centre from the app, within the check-in window, and gets a ticket."""
    ticket = services.check_in_booking(
        reference=reference, centre_id=None, allow_late=False, account_id=require_principal().id
    )
    return services.with_position(ticket)


@bp.route("/tickets")
@auth_required("citizen")
@bp.response(200, TicketSchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_my_tickets():
    """The citizen's tickets, newest first."""
    return services.list_my_tickets(account_id=require_principal().id)


@bp.route("/tickets/<int:ticket_id>")
@auth_required("citizen", "staff", "kiosk", "admin")
@bp.response(200, TicketSchema)
def get_ticket(ticket_id):
    """A ticket with its position and estimated wait (its citizen, or staff and kiosks of its centre)."""
    try:
        ticket = services.get_ticket(ticket_id=ticket_id, principal=require_principal())
    except CentreForbidden:
        raise NotFound() from None  # staff and kiosks elsewhere do not learn that the ticket exists
    return services.with_position(ticket)


@bp.route("/public-tickets/<string:public_id>")
@limit_public_reads()
@bp.response(200, PublicTicketSchema)
def public_ticket(public_id):
    """A ticket's public page data, by its unguessable `public_id` (no sign-in): number, service, status,
    position, estimated wait, counter once called, centre. Nothing that names the visitor."""
    return services.public_ticket(public_id=public_id)


@bp.route("/tickets/<int:ticket_id>/rating", methods=["POST"])
@refusals(RatingNotAllowed)
@auth_required("citizen")
@bp.arguments(RatingSchema)
@bp.response(200, TicketSchema)
def rate_ticket(args, ticket_id):
    """Rate a finished visit 1–5, once."""
    return services.rate_ticket(
        ticket_id=ticket_id, account_id=require_principal().id, score=args["score"], comment=args["comment"]
    )


@bp.route("/centres/<string:centre_id>/queue")
@bp.response(200, QueueSnapshotSchema)
def queue_snapshot(centre_id):
    """The public state of the queue: waiting per service and the latest calls."""
    return services.queue_snapshot(centre_id=centre_id)


@bp.route("/centres/<string:centre_id>/queue/stream")
@refusals(streams.StreamsFromAddress, streams.StreamsFull, InvalidToken, CentreForbidden)
@bp.doc(
    parameters=[
        {"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "string"}},
        {"in": "query", "name": "last_event_id", "required": False, "schema": {"type": "string"}},
        {"in": "query", "name": "token", "required": False, "schema": {"type": "string"}},
    ],
    responses={
        "200": {
            "description": "Server-sent events, each with an `id:`: `snapshot` on connect, then "
            "`ticket.called`, `ticket.recalled` and `queue.updated`; a keep-alive comment every ~15 s. "
            "Reconnecting with `Last-Event-ID` sends the events missed (or a fresh snapshot). Anonymous "
            "screens are capped per address (429) and in total (503); a display token "
            "(`?token=dsp_…` or `Authorization: Bearer dsp_…`) is exempt from the per-address cap.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
def queue_stream(centre_id):
    """Live queue events for the hall display (public; capped per address unless a display token is sent)."""
    exempt = _display_token_for(centre_id)
    hub = streams.get_hub(current_app._get_current_object())
    screen = hub.open(centre_id, client_ip(), exempt=exempt)  # registered before the snapshot is read
    try:
        first, after_id = streams.first_frames(
            centre_id,
            request.headers.get("Last-Event-ID") or request.args.get("last_event_id"),
            lambda: services.queue_snapshot(centre_id=centre_id),
        )
    except Exception:
        hub.close(screen)
        raise
    finally:
        # A stream must not hold a database connection (or SQLite's write lock) while it lasts.
        db.session.remove()
    body = stream_with_context(
        _counted_stream(
            streams.stream_screen(
                hub,
                screen,
                first,
                after_id=after_id,
                keepalive_seconds=current_app.config["QUEUE_KEEPALIVE_SECONDS"],
                max_seconds=current_app.config["QUEUE_STREAM_MAX_SECONDS"],
            )
        )
    )
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
    )


def _counted_stream(stream):
    """The stream, counted in `sanad_sse_streams_open` while a display holds it open."""
    SSE_STREAMS.inc()
    try:
        yield from stream
    finally:
        SSE_STREAMS.dec()


def _display_token_for(centre_id: str) -> bool:
    """Whether the caller is a display of this centre (`Authorization: Bearer dsp_…` or `?token=dsp_…`,
    since a browser's EventSource cannot send headers); a bad or foreign token is refused."""
    header = request.headers.get("Authorization", "")
    scheme, _, bearer = header.partition(" ")
    token = bearer.strip() if scheme.lower() == "bearer" else ""
    token = token or request.args.get("token", "")
    if not token.startswith(DISPLAY_TOKEN_PREFIX):
        return False
    from app.accounts.services import find_display_by_token

    display = find_display_by_token(token)
    if display is None:
        raise InvalidToken()
    if display.centre_id != centre_id:
        raise CentreForbidden()
    return True


# ---------------------------------------------------------------------------------- staff: counters


@bp.route("/staff/counters/<int:counter_id>/open", methods=["POST"])
@refusals(CounterTaken, AlreadyAtCounter, TakeoverNotAllowed, CounterInUse, ServiceNotServed)
@auth_required("staff")
@bp.arguments(CounterOpenSchema)
@bp.response(200, CounterSessionSchema)
def open_counter(args, counter_id):
    """Open a counter for a set of services (the clerk re-opening their own counter changes its services).

    A counter another clerk holds: `counter_taken` with `details` {held_by (name), held_by_account_id,
    since}; a supervisor may take it over with `force: true` (audited; a clerk's `force` is
    `takeover_not_allowed`). A clerk holds one counter: already at another is `already_at_counter` with
    `details` {counter_id, number, since} (close that one first).
    """
    return counters.open_counter(
        counter_id=counter_id, services=args["services"], principal=require_principal(), force=args["force"]
    )


@bp.route("/staff/counters/<int:counter_id>/close", methods=["POST"])
@refusals(CounterNotOpen, CounterTaken)
@auth_required("staff")
@bp.response(200, CounterSessionSchema)
def close_counter(counter_id):
    """Close the counter the clerk holds (a supervisor may close any clerk's counter: audited)."""
    return counters.close_counter(counter_id=counter_id, principal=require_principal())


@bp.route("/staff/counters/<int:counter_id>/pause", methods=["POST"])
@refusals(CounterNotOpen, CounterTaken)
@auth_required("staff")
@bp.arguments(CounterPauseSchema)
@bp.response(200, CounterSessionSchema)
def pause_counter(args, counter_id):
    """Pause the counter with a reason: it calls nobody (`counter_paused`) and counts for no wait estimate
    until resumed (pausing again changes the reason)."""
    return counters.pause_counter(counter_id=counter_id, reason=args["reason"], principal=require_principal())


@bp.route("/staff/counters/<int:counter_id>/resume", methods=["POST"])
@refusals(CounterNotOpen, CounterTaken)
@auth_required("staff")
@bp.response(200, CounterSessionSchema)
def resume_counter(counter_id):
    """Resume a paused counter (a counter that is not paused stays as it is)."""
    return counters.resume_counter(counter_id=counter_id, principal=require_principal())


@bp.route("/staff/centres/<string:centre_id>/counters")
@auth_required("staff", "admin")
@bp.response(200, FloorSchema)
def floor_view(centre_id):
    """Every counter of the centre with its state (closed, open, paused, serving), clerk, current ticket,
    since when and pause reason: the floor for consoles and the supervisor's dashboard."""
    return counters.floor_view(centre_id=centre_id, principal=require_principal())


@bp.route("/staff/counters/<int:counter_id>")
@auth_required("staff")
@bp.response(200, CounterStateSchema)
def counter_state(counter_id):
    """A counter's session, current ticket and the first 50 tickets it will call."""
    return counters.counter_state(counter_id=counter_id, principal=require_principal())


@bp.route("/staff/counters/<int:counter_id>/call-next", methods=["POST"])
@refusals(CounterNotOpen, CounterTaken, CounterPaused, TicketInService)
@auth_required("staff")
@bp.response(200, TicketSchema)
@bp.alt_response(204, description="Nobody is waiting for the services of this counter")
def call_next(counter_id):
    """Call the next ticket by the queue policy (urgent, due appointments, then issue order).

    Refused while a ticket is being served at the counter (`ticket_in_service`: complete it first), while
    the counter is paused (`counter_paused`) or held by another clerk (`counter_taken`). A ticket called but
    not started goes back to its place in the queue first (so nobody is skipped by a double click: use
    no-show to skip).
    """
    ticket = services.call_next_ticket(counter_id=counter_id, principal=require_principal())
    if ticket is None:
        return Response(status=204)
    return services.with_position(ticket)


def _staff_action(action, ticket_id):
    return services.with_position(action(ticket_id=ticket_id, principal=require_principal()))


@bp.route("/staff/tickets/<int:ticket_id>/recall", methods=["POST"])
@refusals(TicketState, CounterNotOpen)
@auth_required("staff")
@bp.response(200, TicketSchema)
def recall(ticket_id):
    """Announce the ticket again (after the configured number of calls it becomes a no-show)."""
    return _staff_action(services.recall_ticket, ticket_id)


@bp.route("/staff/tickets/<int:ticket_id>/start", methods=["POST"])
@refusals(TicketState, CounterNotOpen)
@auth_required("staff")
@bp.response(200, TicketSchema)
def start(ticket_id):
    """The visitor is at the counter."""
    return _staff_action(services.start_ticket, ticket_id)


@bp.route("/staff/tickets/<int:ticket_id>/complete", methods=["POST"])
@refusals(TicketState, CounterNotOpen)
@auth_required("staff")
@bp.response(200, TicketSchema)
def complete(ticket_id):
    """The current service is done: the ticket is done, or (with services to come) waits in the next
    service's queue with the same number and its original issue time (`ticket.requeued` on the stream)."""
    return _staff_action(services.complete_ticket, ticket_id)


@bp.route("/staff/tickets/<int:ticket_id>/no-show", methods=["POST"])
@refusals(TicketState, CounterNotOpen)
@auth_required("staff")
@bp.response(200, TicketSchema)
def no_show(ticket_id):
    """The called visitor did not come."""
    return _staff_action(services.mark_no_show, ticket_id)


@bp.route("/staff/tickets/<int:ticket_id>/transfer", methods=["POST"])
@refusals(TicketState, ServiceNotOffered)
@auth_required("staff")
@bp.arguments(TransferSchema)
@bp.response(200, TicketSchema)
def transfer(args, ticket_id):
    """Send the visitor to another service's queue, keeping their number and original issue time."""
    ticket = services.transfer_ticket(
        ticket_id=ticket_id, service_code=args["service"], principal=require_principal()
    )
    return services.with_position(ticket)


@bp.route("/staff/centres/<string:centre_id>/urgent-tickets", methods=["POST"])
@refusals(CentreClosed, ServiceNotOffered)
@idempotent
@auth_required("supervisor")
@bp.arguments(UrgentTicketCreateSchema)
@bp.response(201, TicketSchema)
def issue_urgent_ticket(args, centre_id):
    """A supervisor issues an urgent ticket to a walk-in visitor, with the reason (audited)."""
    principal = require_principal()
    require_centre(principal, centre_id)
    ticket = services.issue_urgent_ticket(
        centre_id=centre_id, service_code=args["service"], reason=args["reason"], actor=principal
    )
    return services.with_position(ticket)


@bp.route("/staff/centres/<string:centre_id>/stats")
@auth_required("staff", "admin")
@bp.arguments(StatsQuerySchema, location="query")
@bp.response(200, StatsSchema)
def stats(args, centre_id):
    """A centre's figures for a local day: tickets by source, waits, service times, no-shows, ratings; by
    local hour and by service; counters open, paused and serving now; urgent passes used of the reserve."""
    return centre_stats(centre_id=centre_id, day=args["date"], principal=require_principal())


@bp.route("/staff/centres/<string:centre_id>/audit-log")
@auth_required("supervisor", "admin")
@bp.response(200, AuditEntrySchema(many=True))
@bp.paginate(SelectPage, page_size=50, max_page_size=200)
def audit_log(centre_id):
    """The centre's append-only audit trail of urgent decisions and overrides, newest first."""
    return urgent.list_audit_entries(centre_id=centre_id, principal=require_principal())


# ------------------------------------------------------------------------------- urgent passports


@bp.route("/urgent-requests", methods=["POST"])
@refusals(
    UrgentNotAllowed, InvalidDate, UrgentQuotaExceeded, UrgentRequestPending, ServiceNotOffered, NotADependent
)
@idempotent
@auth_required("citizen")
@bp.arguments(UrgentRequestCreateSchema)
@bp.response(201, UrgentRequestSchema)
def create_urgent_request(args):
    """Ask for an urgent passport (one pending at a time; at most 2 approvals a year), for oneself or, with
    `applicant`, for a minor one is a guardian of (anyone else: 403 `not_a_dependent`)."""
    return urgent.create_urgent_request(
        account_id=require_principal().id,
        centre_id=args["centre_id"],
        service_code=args["service"],
        reason_code=args["reason_code"],
        travel_date=args["travel_date"],
        details=args["details"],
        applicant=args.get("applicant"),
    )


@bp.route("/urgent-requests")
@auth_required("citizen")
@bp.response(200, UrgentRequestSchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_urgent_requests():
    """The citizen's urgent requests, newest first."""
    return urgent.list_my_urgent_requests(account_id=require_principal().id)


@bp.route("/urgent-requests/<int:request_id>")
@auth_required("citizen")
@bp.response(200, UrgentRequestSchema)
def get_urgent_request(request_id):
    """One of the citizen's urgent requests."""
    return urgent.get_my_urgent_request(request_id=request_id, account_id=require_principal().id)


@bp.route("/staff/centres/<string:centre_id>/urgent-requests")
@auth_required("supervisor", "admin")
@bp.arguments(UrgentStatusQuerySchema, location="query")
@bp.response(200, StaffUrgentRequestSchema(many=True))
@bp.paginate(SelectPage, page_size=50, max_page_size=200)
def list_centre_urgent_requests(args, centre_id):
    """The centre's urgent requests for its supervisors, oldest first (filter by status)."""
    return urgent.list_centre_urgent_requests(
        centre_id=centre_id, status=args.get("status"), principal=require_principal()
    )


@bp.route("/staff/urgent-requests/<int:request_id>/approve", methods=["POST"])
@refusals(UrgentAlreadyDecided, InvalidDate, UrgentQuotaExceeded, UrgentReserveExhausted)
@auth_required("supervisor")
@bp.arguments(ApproveSchema)
@bp.response(200, StaffUrgentRequestSchema)
def approve_urgent_request(args, request_id):
    """Approve for a date: an urgent booking from that day's reserve (audited, the citizen is told)."""
    return urgent.approve_urgent_request(
        request_id=request_id, local_date=args["date"], note=args["note"], principal=require_principal()
    )


@bp.route("/staff/urgent-requests/<int:request_id>/reject", methods=["POST"])
@refusals(UrgentAlreadyDecided)
@auth_required("supervisor")
@bp.arguments(RejectSchema)
@bp.response(200, StaffUrgentRequestSchema)
def reject_urgent_request(args, request_id):
    """Reject with a note (audited, the citizen is told)."""
    return urgent.reject_urgent_request(
        request_id=request_id, note=args["note"], principal=require_principal()
    )


# ------------------------------------------------------------------------------------------ pages


def _page_lang(default: str = "ar") -> str:
    lang = request.args.get("lang", default)
    return lang if lang in ("ar", "en") else default


def _page_centre(centre_id: str):
    from app.catalogue.services import get_centre

    try:
        return get_centre(centre_id)
    except NotFound:
        abort(404)


@pages_bp.get("/centres/<string:centre_id>/display")
def display_page(centre_id):
    """The hall screen: every service's waiting count, the latest calls, live; a closed state."""
    centre = _page_centre(centre_id)
    return render_template(
        "display.html",
        centre=centre,
        lang=_page_lang(),
        speak=request.args.get("speak") == "1",
        token=request.args.get("token", ""),
    )
