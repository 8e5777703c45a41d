"""The texts of every notification kind, rendered with gettext in the account's language.

English msgids live here; the Arabic is in the gettext catalog (app/translations). Placeholders are
filled from the caller's params plus names looked up in the catalogue (centre, service), so a text
never says "amman-muqabalain" when it can say "مركز خدمات الحكومة الشامل - المقابلين".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import force_locale, gettext

from app.extensions import db


def N_(message: str) -> str:
    """Mark a msgid for extraction (pybabel's default keywords include N_); translated in `render`."""
    return message


# kind -> (title, body). Bodies use %(name)s placeholders (see `_values`).
TEXTS: dict[str, tuple[str, str]] = {
    "booking_held": (
        N_("Appointment on hold"),
        N_(
            "Your appointment %(reference)s for %(service)s at %(centre)s on %(start)s is on hold. "
            "Confirm it to keep it."
        ),
    ),
    "booking_confirmed": (
        N_("Appointment confirmed"),
        N_("Your appointment %(reference)s for %(service)s at %(centre)s is confirmed for %(start)s."),
    ),
    "booking_cancelled": (
        N_("Appointment cancelled"),
        N_("Your appointment %(reference)s at %(centre)s on %(start)s has been cancelled."),
    ),
    "booking_rescheduled": (
        N_("Appointment moved"),
        N_("Your appointment %(reference)s at %(centre)s has been moved to %(start)s."),
    ),
    "booking_suspended": (
        N_("Booking suspended"),
        N_("Because of missed appointments, you cannot book high-demand services until %(until)s."),
    ),
    "booking_cooldown": (
        N_("Booking paused"),
        N_(
            "Because of several cancellations in a short time, "
            "you cannot book new appointments until %(until)s."
        ),
    ),
    "reminder_24h": (
        N_("Appointment reminder"),
        N_(
            "Your appointment %(reference)s for %(service)s at %(centre)s is on %(start)s. "
            "Please bring your documents."
        ),
    ),
    "reminder_2h": (
        N_("Your appointment is soon"),
        N_(
            "Your appointment %(reference)s at %(centre)s starts at %(time)s. "
            "Check in at the centre when you arrive."
        ),
    ),
    "urgent_approved": (
        N_("Urgent request approved"),
        N_("Your urgent request for %(service)s at %(centre)s is approved for %(date)s. %(note)s"),
    ),
    "urgent_rejected": (
        N_("Urgent request not approved"),
        N_("Your urgent request for %(service)s at %(centre)s was not approved. %(note)s"),
    ),
    "turn_near": (
        N_("Your turn is near"),
        N_("Ticket %(number)s: your turn is near (%(ahead)s ahead of you). Please stay near the counters."),
    ),
    "draw_won": (
        N_("You have a place"),
        N_(
            "The draw for %(service)s at %(centre)s gave you %(start)s (%(reference)s). "
            "Confirm it by %(until_time)s or it goes to the next person."
        ),
    ),
    "draw_waitlisted": (
        N_("You are on the waiting list"),
        N_(
            "The draw for %(service)s at %(centre)s is done and you did not get a place yet. "
            "You are on its waiting list: if a place comes free, it is offered to you in draw order."
        ),
    ),
    "draw_lost": (
        N_("No place came free"),
        N_(
            "The days of the draw for %(service)s at %(centre)s have passed without a place coming free for "
            "you. You can book another day or join a waiting list."
        ),
    ),
    "waitlist_offer": (
        N_("A place came free for you"),
        N_(
            "A place for %(service)s at %(centre)s on %(start)s is held for you (%(reference)s). "
            "Confirm it by %(until_time)s or it goes to the next person."
        ),
    ),
    "ticket_called": (
        N_("Go to counter %(counter)s"),
        N_("Ticket %(number)s: please go to counter %(counter)s now."),
    ),
}
KINDS = tuple(TEXTS)
LANGUAGES = ("ar", "en")
# Params copied into the push's data (as strings) so the app can route on them.
ROUTING_FIELDS = (
    "reference",
    "booking_id",
    "ticket_id",
    "request_id",
    "centre_id",
    "service_code",
    "counter",
    "number",
    "draw_id",
    "waitlist_id",
)
_PLACEHOLDERS = (
    "reference",
    "service",
    "centre",
    "start",
    "time",
    "date",
    "until",
    "note",
    "number",
    "ahead",
    "counter",
    "until_time",
)


@dataclass(frozen=True, slots=True)
class RenderedText:
    language: str
    title: str
    body: str


def render(kind: str, params: Mapping[str, Any], language: str) -> RenderedText:
    """The title and body of `kind` in `language` ('ar' or 'en'); needs an app context."""
    if kind not in TEXTS:
        raise ValueError(f"unknown notification kind {kind!r}")
    language = language if language in LANGUAGES else "ar"
    title, body = _templates(kind, language)
    values = _values(params, language)
    return RenderedText(language=language, title=_tidy(title % values), body=_tidy(body % values))


# (kind, language) -> the translated title and body, looked up once per process: the catalogs are
# compiled files that never change while the app runs, and a locale switch per message costs more than
# the rest of the rendering.
_TEMPLATES: dict[tuple[str, str], tuple[str, str]] = {}


def _templates(kind: str, language: str) -> tuple[str, str]:
    key = (kind, language)
    found = _TEMPLATES.get(key)
    if found is None:
        title_id, body_id = TEXTS[kind]
        with force_locale(language):
            # gettext without variables returns the template untouched (no %-formatting), as `render`
            # then formats it with every placeholder, exactly what gettext(msgid, **values) does.
            found = _TEMPLATES[key] = (gettext(title_id), gettext(body_id))
    return found


def routing_data(kind: str, params: Mapping[str, Any], data: Mapping[str, Any] | None) -> dict[str, str]:
    """The push's data fields: the kind, routing ids from params, then the caller's data; all strings."""
    out = {"kind": kind}
    for key in ROUTING_FIELDS:
        value = params.get(key)
        if value is not None and value != "":
            out[key] = str(value)
    for key, value in (data or {}).items():
        if value is not None:
            out[str(key)] = str(value)
    return out


def _values(params: Mapping[str, Any], language: str) -> dict[str, str]:
    """Every placeholder filled (empty when unknown), names localised, instants in the centre's zone."""
    values = {name: "" for name in _PLACEHOLDERS}
    values.update({k: str(v) for k, v in params.items() if v is not None and not isinstance(v, dt.datetime)})
    centre = _centre(params.get("centre_id"))
    zone = ZoneInfo(centre.timezone) if centre is not None else None
    if centre is not None and not params.get("centre"):
        values["centre"] = centre.name_ar if language == "ar" else centre.name_en
    service = _service(params.get("service_code"))
    if service is not None and not params.get("service"):
        values["service"] = service.name_ar if language == "ar" else service.name_en
    start = _instant(params.get("start"), zone)
    if start is not None:
        values["start"] = start.strftime("%Y-%m-%d %H:%M")
        values["time"] = start.strftime("%H:%M")
    until = _instant(params.get("until"), zone)
    if until is not None:
        values["until"] = until.strftime("%Y-%m-%d")
    until_time = _instant(params.get("until_time"), zone)
    if until_time is not None:
        values["until_time"] = until_time.strftime("%Y-%m-%d %H:%M")
    if not values["counter"] and params.get("counter_number") is not None:
        values["counter"] = str(params["counter_number"])
    return values


def _instant(value: Any, zone: ZoneInfo | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is not None and zone is not None:
        value = value.astimezone(zone)
    return value


def _centre(centre_id: Any):
    if not centre_id:
        return None
    from app.catalogue.models import Centre

    return db.session.get(Centre, str(centre_id))


def _service(code: Any):
    if not code:
        return None
    from app.catalogue.models import Service

    return db.session.get(Service, str(code))


def _tidy(text: str) -> str:
    return " ".join(text.split())
