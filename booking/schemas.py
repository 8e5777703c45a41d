"""Bodies of the booking endpoints; instants leave in the centre's local offset with its IANA zone."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.schemas import N_, BaseSchema, Integer, QuerySchema
from booking.localtime import local_iso
from booking.models import BOOKING_STATUSES, MAX_APPLICANTS, SUSPENSION_KINDS

# Valid search query strings and what they load to, per process (at most LOADED_SEARCHES_MAX of them).
LOADED_SEARCHES_MAX = 4096
_loaded_searches: dict[tuple[Any, ...], dict[str, Any]] = {}


class SlotQuerySchema(QuerySchema):
    service = ma.fields.String(required=True, validate=validate.Length(min=3, max=64))
    date_from = ma.fields.Date(data_key="from", metadata={"description": "First centre-local day"})
    date_to = ma.fields.Date(data_key="to", metadata={"description": "Last centre-local day (inclusive)"})

    @ma.validates_schema
    def _range(self, data, **kwargs):
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise ma.ValidationError(N_("`to` is before `from`."), "to")

    def load(self, data, **kwargs):
        """A query string seen before loads to what it loaded to then: the same month is searched by
        thousands, and what a query string loads to depends on nothing else. Refusals are not kept."""
        try:
            key = tuple(data.items()) if not any(kwargs.values()) else None
            loaded = _loaded_searches.get(key) if key is not None else None
        except TypeError:  # a value that cannot be a key (a repeated parameter): load it as it comes
            key = loaded = None
        if loaded is None:
            loaded = super().load(data, **kwargs)
            if key is not None:
                if len(_loaded_searches) >= LOADED_SEARCHES_MAX:
                    _loaded_searches.clear()
                _loaded_searches[key] = loaded
        return dict(loaded)


class AvailableSlotSchema(BaseSchema):
    """Documents the availability answer; booking.availability writes the same JSON without it (tested)."""

    slot_id = Integer()
    start = ma.fields.Method("local_start", metadata={"description": "ISO 8601, centre-local offset"})
    end = ma.fields.Method("local_end")
    available = Integer(metadata={"description": "Seats left"})
    timezone = ma.fields.String(metadata={"description": "The centre's IANA zone"})

    def local_start(self, obj):
        return local_iso(obj.start, obj.timezone)

    def local_end(self, obj):
        return local_iso(obj.end, obj.timezone)


NATIONAL_ID = validate.Regexp(r"^\d{10}$", error=N_("A national number has 10 digits."))


class HoldSchema(BaseSchema):
    slot_id = Integer(required=True, minimum=1)
    applicants = ma.fields.List(
        ma.fields.String(validate=NATIONAL_ID),
        validate=validate.Length(min=1, max=MAX_APPLICANTS),
        metadata={
            "description": "Whom the booking is for, one seat each: the citizen's own national id and/or "
            "those of the minors they are a guardian of (`GET /me/dependents?on=` the slot's day). "
            "Default: the citizen alone.",
            "uniqueItems": True,
            "example": ["9990000001", "9990000201"],
        },
    )

    @ma.validates("applicants")
    def _distinct(self, value, **kwargs):
        if len(set(value)) != len(value):
            raise ma.ValidationError(N_("An applicant is listed twice."))


class RescheduleSchema(BaseSchema):
    slot_id = Integer(required=True, minimum=1)


class BookingQuerySchema(QuerySchema):
    status = ma.fields.String(validate=validate.OneOf(BOOKING_STATUSES))


class ApplicantSchema(BaseSchema):
    national_id = ma.fields.String()
    full_name = ma.fields.Method("localised_name")
    date_of_birth = ma.fields.Date()

    def localised_name(self, obj):
        return obj.full_name_en if BookingSchema._english() else obj.full_name_ar


class BookingSchema(BaseSchema):
    reference = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(BOOKING_STATUSES)})
    kind = ma.fields.String(metadata={"enum": ["regular", "urgent"]})
    centre_id = ma.fields.String()
    centre_name = ma.fields.Method("localised_centre")
    address = ma.fields.Method("localised_address")
    service_code = ma.fields.String()
    slot_id = Integer(allow_none=True)
    start = ma.fields.Method("local_start", metadata={"description": "Slot start (null for urgent passes)"})
    end = ma.fields.Method("local_end")
    urgent_date = ma.fields.Date(allow_none=True)
    timezone = ma.fields.Method("zone")
    hold_expires_at = ma.fields.Method("local_hold_expires_at")
    created_at = ma.fields.Method("local_created_at")
    confirmed_at = ma.fields.Method("local_confirmed_at")
    cancelled_at = ma.fields.Method("local_cancelled_at")
    checked_in_at = ma.fields.Method("local_checked_in_at")
    calendar_url = ma.fields.Method("calendar")
    seats = Integer(metadata={"description": "Seats the booking takes: one per applicant"})
    applicants = ma.fields.List(
        ma.fields.Nested(ApplicantSchema), metadata={"description": "Whom it is for, in the order booked"}
    )

    @staticmethod
    def _english() -> bool:
        from flask_babel import get_locale

        locale = get_locale()
        return locale is not None and locale.language == "en"

    def zone(self, obj):
        return obj.centre.timezone

    def localised_centre(self, obj):
        return obj.centre.name_en if self._english() else obj.centre.name_ar

    def localised_address(self, obj):
        return obj.centre.address_en if self._english() else obj.centre.address_ar

    def local_start(self, obj):
        return local_iso(obj.slot.start, obj.centre.timezone) if obj.slot is not None else None

    def local_end(self, obj):
        return local_iso(obj.slot.end, obj.centre.timezone) if obj.slot is not None else None

    def local_hold_expires_at(self, obj):
        return local_iso(obj.hold_expires_at, obj.centre.timezone) if obj.status == "held" else None

    def local_created_at(self, obj):
        return local_iso(obj.created_at, obj.centre.timezone)

    def local_confirmed_at(self, obj):
        return local_iso(obj.confirmed_at, obj.centre.timezone)

    def local_cancelled_at(self, obj):
        return local_iso(obj.cancelled_at, obj.centre.timezone)

    def local_checked_in_at(self, obj):
        return local_iso(obj.checked_in_at, obj.centre.timezone)

    def calendar(self, obj):
        return f"/api/v1/bookings/{obj.reference}/calendar.ics"


class AbuseEventQuerySchema(QuerySchema):
    national_id = ma.fields.String(validate=validate.Length(max=20))
    rule = ma.fields.String(validate=validate.Length(max=40))
    device_id = ma.fields.String(validate=validate.Length(max=128))
    ip = ma.fields.String(validate=validate.Length(max=64))
    since = ma.fields.AwareDateTime()
    until = ma.fields.AwareDateTime()


class AbuseEventSchema(BaseSchema):
    id = Integer()
    account_id = Integer(allow_none=True)
    national_id = ma.fields.String(allow_none=True)
    device_id = ma.fields.String(allow_none=True)
    ip = ma.fields.String(allow_none=True)
    rule = ma.fields.String()
    reason = ma.fields.String()
    details = ma.fields.Dict()
    created_at = ma.fields.AwareDateTime()


class SuspensionSchema(BaseSchema):
    id = Integer()
    kind = ma.fields.String(metadata={"enum": list(SUSPENSION_KINDS)})
    scope = ma.fields.String()
    until = ma.fields.AwareDateTime()
    created_at = ma.fields.AwareDateTime()
    lifted_at = ma.fields.AwareDateTime(allow_none=True)
    lifted_by = Integer(allow_none=True)
    active = ma.fields.Method("is_active")

    def is_active(self, obj):
        from app import clock

        return obj.lifted_at is None and obj.until > clock.now()


class LiftSuspensionSchema(BaseSchema):
    kind = ma.fields.String(
        validate=validate.OneOf(SUSPENSION_KINDS), metadata={"description": "Only this kind"}
    )
