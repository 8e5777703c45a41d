"""The centre floor's pages: the kiosk, a ticket's public page (and its QR code), the supervisor's dashboard.

Pages only render: every figure and action goes through the JSON API from the page's script, so a page and
the app's clients see the same answers. Texts come from the Babel catalogs in the page's language.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import force_locale, gettext

from app.errors import NotFound
from app.qr import qr_svg

LANGUAGES = ("ar", "en")
# A ticket's public id is a random token: only its alphabet is known here, not whether it exists.
PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

bp = Blueprint("floor_pages", __name__, template_folder="templates")


def page_language() -> str:
    """The page's language: `?lang=` (the page's toggle), else the browser's Accept-Language, else Arabic."""
    wanted = request.args.get("lang")
    if wanted in LANGUAGES:
        return wanted
    return request.accept_languages.best_match(LANGUAGES) or "ar"


def render_page(template: str, lang: str, **context):
    """A template rendered with the catalogs of `lang` (not the request's locale: `?lang=` wins)."""
    with force_locale(lang):
        return render_template(
            template,
            lang=lang,
            dir="rtl" if lang == "ar" else "ltr",
            other_lang="en" if lang == "ar" else "ar",
            **context,
        )


def _centre_or_404(centre_id: str):
    from app.catalogue.services import get_centre

    try:
        return get_centre(centre_id)
    except NotFound:
        abort(404)


def _offered_services(centre) -> list:
    """The services a kiosk offers: the centre's active offerings of active services, by code."""
    services = [o.service for o in centre.offerings if o.active and o.service.active]
    return sorted(services, key=lambda s: s.code)


def _kiosk_texts() -> dict[str, str]:
    return {
        "noToken": gettext("This kiosk is not registered. Open it once with its kiosk token (?token=…)."),
        "next": gettext("You are next"),
        "wait": gettext("About %(m)s min", m="{m}"),
        "checkedIn": gettext("Checked in: your appointment ticket"),
        "closed": gettext("The centre is closed."),
        "opensAt": gettext("It opens at %(time)s.", time="{time}"),
        "scanning": gettext("Hold the booking's QR code in front of the camera"),
        "noCamera": gettext("The camera could not be used: type the reference instead."),
        "failed": gettext("Something went wrong. Please try again or ask the staff."),
    }


@bp.get("/centres/<string:centre_id>/kiosk")
def kiosk_page(centre_id: str):
    """The kiosk: a ticket for a service (priority for vulnerable visitors), a booking checked in, printed."""
    from app.catalogue.services import opening_state
    from app.security import find_kiosk_by_token
    from app.tokens import KIOSK_TOKEN_PREFIX

    centre = _centre_or_404(centre_id)
    token = request.args.get("token", "")
    if token:
        # The token is checked once here (a wrong one says so at once); the script keeps it on the device.
        kiosk = find_kiosk_by_token(token) if token.startswith(KIOSK_TOKEN_PREFIX) else None
        if kiosk is None or kiosk.centre_id != centre.id:
            abort(403)
    lang = page_language()
    with force_locale(lang):
        texts = _kiosk_texts()
    return render_page(
        "kiosk.html",
        lang,
        centre=centre,
        services=_offered_services(centre),
        opening=opening_state(centre),
        texts=texts,
    )


def _public_texts() -> dict[str, str]:
    return {
        "waiting": gettext("Waiting"),
        "position": gettext("Your turn in the queue: %(n)s", n="{n}"),
        "next": gettext("You are next"),
        "wait": gettext("Estimated wait: about %(m)s min", m="{m}"),
        "called": gettext("It is your turn: go to"),
        "serving": gettext("Being served at"),
        "done": gettext("Your visit is finished. Thank you."),
        "no_show": gettext("Your ticket was called and nobody came."),
        "expired": gettext("This ticket has expired."),
        "cancelled": gettext("This ticket was cancelled."),
        "notFound": gettext("No ticket has this link."),
        "offline": gettext("No connection: trying again…"),
        "updated": gettext("Updated %(time)s", time="{time}"),
        "counter": gettext("Counter %(n)s", n="{n}"),
    }


@bp.get("/t/<string:public_id>")
def public_ticket_page(public_id: str):
    """A ticket's public page (no sign-in): its live position and wait, and the counter once called."""
    if not PUBLIC_ID.match(public_id):
        abort(404)
    lang = page_language()
    with force_locale(lang):
        texts = _public_texts()
    return render_page("ticket.html", lang, public_id=public_id, texts=texts)


@bp.get("/t/<string:public_id>/qr.svg")
def public_ticket_qr(public_id: str):
    """The QR code printed on a ticket: the absolute address of its public page."""
    if not PUBLIC_ID.match(public_id):
        abort(404)
    address = url_for("floor_pages.public_ticket_page", public_id=public_id, _external=True)
    response = current_app.response_class(qr_svg(address, scale=4, border=2), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def _dashboard_texts() -> dict[str, str]:
    return {
        "supervisorsOnly": gettext("The dashboard is for the centre's supervisors."),
        "issued": gettext("Issued"),
        "served": gettext("Served"),
        "meanWait": gettext("Mean wait (min)"),
        "p90Wait": gettext("90th percentile wait (min)"),
        "open": gettext("Open"),
        "paused": gettext("Paused"),
        "serving": gettext("Serving"),
        "closed": gettext("Closed"),
        "used": gettext("Used"),
        "left": gettext("Left"),
        "updated": gettext("Updated %(time)s", time="{time}"),
        "ratings": gettext("%(n)s ratings", n="{n}"),
    }


def _console_texts() -> dict:
    return {
        "waiting": gettext("Waiting"),
        "called": gettext("Called — waiting for the visitor"),
        "serving": gettext("Being served"),
        "none": gettext("Nobody is waiting"),
        "ready": gettext("Counter ready: %(n)s waiting. Press Call next", n="{n}"),
        "opened": gettext("Counter opened"),
        "closed": gettext("Counter closed"),
        "chooseServices": gettext("Choose at least one service"),
        "staffOnly": gettext("This console is for centre staff only"),
        "taken": gettext("This counter is held by %(who)s since %(since)s.", who="{who}", since="{since}"),
        "paused": gettext("Counter paused: %(reason)s", reason="{reason}"),
        "minutes": gettext("%(m)s min", m="{m}"),
        "free": gettext("Closed"),
        "open": gettext("Open"),
        "pausedShort": gettext("Paused"),
        "transferred": gettext("Transferred to %(service)s", service="{service}"),
        "sources": {
            "walk_in": gettext("Walk-in"),
            "appointment": gettext("Appointment"),
            "urgent": gettext("Urgent"),
            "remote": gettext("Remote"),
        },
        "vulnerable": gettext("Priority"),
        "reasons": {
            "break": gettext("Break"),
            "prayer": gettext("Prayer"),
            "system_fault": gettext("System fault"),
            "supervisor": gettext("With the supervisor"),
            "other": gettext("Other"),
        },
    }


@bp.get("/staff/console")
def console_page():
    """The clerk's console: open a counter, call, recall, start, complete, no-show, transfer, pause."""
    lang = page_language()
    with force_locale(lang):
        texts = _console_texts()
    return render_page("console.html", lang, texts=texts)


@bp.get("/staff/dashboard")
def dashboard_page():
    """The supervisor's dashboard: today's tickets by hour, waits by service, counters, no-shows, ratings."""
    lang = page_language()
    with force_locale(lang):
        texts = _dashboard_texts()
    return render_page("dashboard.html", lang, texts=texts)
