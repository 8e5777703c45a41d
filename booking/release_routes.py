"""HTTP endpoints of release day (`booking.draws`): draws, their entries and results, and waitlists."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.idempotency import idempotent
from app.pagination import SelectPage
from app.security import auth_required, require_principal
from booking import draw_entries, draw_run, draws, waitlist
from booking.release_schemas import (
    DrawCancelSchema,
    DrawCreateSchema,
    DrawQuerySchema,
    DrawResultSchema,
    DrawSchema,
    EntryCreateSchema,
    EntryQuerySchema,
    EntrySchema,
    WaitlistCreateSchema,
    WaitlistSchema,
)

bp = Blueprint("release", __name__, url_prefix="/api/v1", description="Release day: draws and waitlists")


# -------------------------------------------------------------------------------------------- draws


@bp.route("/draws")
@auth_required()
@bp.arguments(DrawQuerySchema, location="query")
@bp.response(200, DrawSchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_draws(args):
    """Draws, soonest closing first (any signed-in user)."""
    return draws.list_draws(**args)


@bp.route("/draws/<int:draw_id>")
@auth_required()
@bp.response(200, DrawSchema)
def get_draw(draw_id):
    """One draw, with its seed commitment (and its seed once drawn)."""
    return draws.get_draw(draw_id=draw_id)


@bp.route("/draws/<int:draw_id>/result")
@bp.response(200, DrawResultSchema)
def draw_result(draw_id):
    """The public result once drawn: enough to recompute the order and the allocation (no names)."""
    return draws.draw_result(draw_id=draw_id)


@bp.route("/draws/<int:draw_id>/entries", methods=["POST"])
@idempotent
@auth_required("citizen")
@bp.arguments(EntryCreateSchema)
@bp.response(201, EntrySchema)
def enter_draw(args, draw_id):
    """Enter a draw (one entry per person; 409 `draw_closed` after the close, `already_entered` twice).

    With `applicant`, the entry is for a minor the citizen is a guardian of (anyone else: 403
    `not_a_dependent`), and a win is that person's seat.
    """
    principal = require_principal("citizen")
    return draw_entries.enter_draw(
        account_id=principal.id,
        draw_id=draw_id,
        part_of_day=args["part_of_day"],
        applicant=args.get("applicant"),
    )


@bp.route("/draws/<int:draw_id>/entries/me", methods=["DELETE"])
@auth_required("citizen")
@bp.arguments(EntryQuerySchema, location="query")
@bp.response(200, EntrySchema)
def withdraw_entry(args, draw_id):
    """Withdraw the citizen's entry (or, with `applicant`, their dependent's) before the close."""
    return draw_entries.withdraw_entry(
        account_id=require_principal("citizen").id, draw_id=draw_id, applicant=args.get("applicant")
    )


@bp.route("/me/draw-entries")
@auth_required("citizen")
@bp.response(200, EntrySchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_my_entries():
    """The citizen's entries with their status and, when won or offered, the booking reference."""
    return draw_entries.list_my_entries(account_id=require_principal("citizen").id)


@bp.route("/admin/draws", methods=["POST"])
@auth_required("admin")
@bp.arguments(DrawCreateSchema)
@bp.response(201, DrawSchema)
def create_draw(args):
    """Create a draw over an offering's days (its allocation must be `draw`); audited."""
    principal = require_principal("admin")
    return draws.create_draw(
        admin_id=principal.id,
        centre_id=args["centre_id"],
        service_code=args["service"],
        days_from=args["days_from"],
        days_to=args["days_to"],
        entries_open_at=args["entries_open_at"],
        entries_close_at=args["entries_close_at"],
        confirm_hours=args.get("confirm_hours"),
    )


@bp.route("/admin/draws/<int:draw_id>/run", methods=["POST"])
@auth_required("admin")
@bp.response(200, DrawSchema)
def run_draw(draw_id):
    """Close the entries and draw now (idempotent: a drawn draw is answered as it is); audited."""
    principal = require_principal("admin")
    return draw_run.run_draw(draw_id=draw_id, actor_id=principal.id, actor_role="admin")


@bp.route("/admin/draws/<int:draw_id>/cancel", methods=["POST"])
@auth_required("admin")
@bp.arguments(DrawCancelSchema)
@bp.response(200, DrawSchema)
def cancel_draw(args, draw_id):
    """Cancel an open draw: its days go back to first-come sale; audited."""
    principal = require_principal("admin")
    return draws.cancel_draw(admin_id=principal.id, draw_id=draw_id, reason=args.get("reason"))


# ----------------------------------------------------------------------------------------- waitlist


@bp.route("/waitlist", methods=["POST"])
@idempotent
@auth_required("citizen")
@bp.arguments(WaitlistCreateSchema)
@bp.response(201, WaitlistSchema)
def join_waitlist(args):
    """Wait for a seat of a first-come offering; a freed seat is held for you, in join order."""
    principal = require_principal("citizen")
    entry, _ = waitlist.join_waitlist(account_id=principal.id, service_code=args.pop("service"), **args)
    return entry


@bp.route("/waitlist")
@auth_required("citizen")
@bp.response(200, WaitlistSchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_waitlist():
    """The citizen's waitlist places, with the booking offered if any."""
    return waitlist.list_waitlist(account_id=require_principal("citizen").id)


@bp.route("/waitlist/<int:waitlist_id>", methods=["DELETE"])
@auth_required("citizen")
@bp.response(200, WaitlistSchema)
def leave_waitlist(waitlist_id):
    """Leave a waitlist."""
    return waitlist.leave_waitlist(account_id=require_principal("citizen").id, waitlist_id=waitlist_id)
