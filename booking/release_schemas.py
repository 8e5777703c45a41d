"""Bodies of the release-day endpoints (draws, entries, waitlists); instants leave in the centre's offset."""

from __future__ import annotations

import datetime as dt

import marshmallow as ma
from marshmallow import validate

from app.catalogue.schemas import SLUG
from app.schemas import BaseSchema, Integer, QuerySchema
from booking.localtime import local_iso
from booking.release_models import DRAW_STATUSES, ENTRY_STATUSES, PARTS_OF_DAY, WAITLIST_STATUSES
from booking.schemas import NATIONAL_ID

SERVICE_CODE = [
    validate.Length(max=64),
    validate.Regexp(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$", error="A service code looks like `group.name`."),
]
# Dates a draw or a waitlist may name at all (the horizon check narrows them further).
_SENSIBLE = validate.Range(min=dt.date(2000, 1, 1), max=dt.date(2100, 12, 31))


class AwareInstant(ma.fields.AwareDateTime):
    """An instant with its offset (a naive one is refused), bounded to sensible years."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        if not dt.datetime(2000, 1, 1, tzinfo=dt.UTC) <= instant <= dt.datetime(2100, 12, 31, tzinfo=dt.UTC):
            raise ma.ValidationError("Outside sensible bounds.")
        return instant.astimezone(dt.UTC)


class DrawCreateSchema(BaseSchema):
    centre_id = ma.fields.String(required=True, validate=SLUG)
    service = ma.fields.String(required=True, validate=SERVICE_CODE)
    days_from = ma.fields.Date(required=True, validate=_SENSIBLE)
    days_to = ma.fields.Date(required=True, validate=_SENSIBLE)
    entries_open_at = AwareInstant(required=True)
    entries_close_at = AwareInstant(required=True)
    confirm_hours = Integer(load_default=None, allow_none=True, minimum=1, maximum=168)


class DrawCancelSchema(BaseSchema):
    reason = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class DrawQuerySchema(QuerySchema):
    centre_id = ma.fields.String(validate=SLUG)
    service = ma.fields.String(validate=SERVICE_CODE)
    status = ma.fields.String(validate=validate.OneOf(DRAW_STATUSES))


class DrawSchema(BaseSchema):
    draw_id = Integer(attribute="id")
    centre_id = ma.fields.String()
    service = ma.fields.String(attribute="service_code")
    days_from = ma.fields.Date()
    days_to = ma.fields.Date()
    entries_open_at = ma.fields.Method("local_open")
    entries_close_at = ma.fields.Method("local_close")
    timezone = ma.fields.Method("zone")
    status = ma.fields.String(metadata={"enum": list(DRAW_STATUSES)})
    seats = ma.fields.Method(
        "seat_count", metadata={"description": "Free seats of the draw's days (at the close)"}
    )
    entries = ma.fields.Method("entry_count")
    seed_commitment = ma.fields.String(metadata={"description": "hex SHA-256 of the seed's bytes"})
    seed = ma.fields.Method("public_seed", allow_none=True, metadata={"description": "Null until drawn"})
    confirm_hours = Integer()
    drawn_at = ma.fields.Method("local_drawn")

    def zone(self, obj):
        return obj.centre.timezone

    def local_open(self, obj):
        return local_iso(obj.entries_open_at, obj.centre.timezone)

    def local_close(self, obj):
        return local_iso(obj.entries_close_at, obj.centre.timezone)

    def local_drawn(self, obj):
        return local_iso(obj.drawn_at, obj.centre.timezone)

    def public_seed(self, obj):
        return obj.seed if obj.status == "drawn" else None

    def seat_count(self, obj):
        from booking.draws import seat_counts

        return seat_counts([obj])[obj.id]

    def entry_count(self, obj):
        from booking.draws import entry_counts

        return entry_counts([obj.id]).get(obj.id, 0)


class EntryCreateSchema(BaseSchema):
    part_of_day = ma.fields.String(load_default="any", validate=validate.OneOf(PARTS_OF_DAY))
    applicant = ma.fields.String(
        validate=NATIONAL_ID,
        metadata={
            "description": "The national id of a minor the citizen is a guardian of (on the draw's first "
            "day) when the entry is theirs: a win is that person's seat. Default: the citizen. One entry "
            "per person and draw."
        },
    )


class EntryQuerySchema(QuerySchema):
    applicant = ma.fields.String(
        validate=NATIONAL_ID,
        metadata={"description": "The dependent whose entry to withdraw (default: the citizen's own)"},
    )


class EntrySchema(BaseSchema):
    entry_id = Integer(attribute="id")
    draw_id = Integer()
    applicant = ma.fields.String(attribute="national_id", metadata={"description": "Whom the entry is for"})
    entry_token = ma.fields.String()
    part_of_day = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(ENTRY_STATUSES)})
    reason = ma.fields.String(attribute="excluded_reason", allow_none=True)
    rank = Integer(allow_none=True, metadata={"description": "Place in the draw order once drawn"})
    reference = ma.fields.Method("booking_reference", allow_none=True)
    booking_status = ma.fields.Method("booking_state", allow_none=True)

    def _booking(self, obj):
        if not hasattr(obj, "_booking_cache"):
            from booking.draw_entries import entry_booking

            obj._booking_cache = entry_booking(obj.id)
        return obj._booking_cache

    def booking_reference(self, obj):
        booking = self._booking(obj)
        return booking.reference if booking is not None else None

    def booking_state(self, obj):
        booking = self._booking(obj)
        return booking.status if booking is not None else None


class WaitlistCreateSchema(BaseSchema):
    service = ma.fields.String(required=True, validate=SERVICE_CODE)
    centre_id = ma.fields.String(required=True, validate=SLUG)
    date_from = ma.fields.Date(required=True, data_key="from", validate=_SENSIBLE)
    date_to = ma.fields.Date(required=True, data_key="to", validate=_SENSIBLE)
    part_of_day = ma.fields.String(load_default="any", validate=validate.OneOf(PARTS_OF_DAY))


class WaitlistSchema(BaseSchema):
    waitlist_id = Integer(attribute="id")
    service = ma.fields.String(attribute="service_code")
    centre_id = ma.fields.String()
    date_from = ma.fields.Date(data_key="from")
    date_to = ma.fields.Date(data_key="to")
    part_of_day = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(WAITLIST_STATUSES)})
    position = ma.fields.Method("place", allow_none=True)
    reference = ma.fields.Method("booking_reference", allow_none=True)
    booking_status = ma.fields.Method("booking_state", allow_none=True)
    created_at = ma.fields.AwareDateTime()

    def place(self, obj):
        from booking.waitlist import waitlist_position

        return waitlist_position(obj)

    def _booking(self, obj):
        if not hasattr(obj, "_booking_cache"):
            from booking.waitlist import offered_booking

            obj._booking_cache = offered_booking(obj.id)
        return obj._booking_cache

    def booking_reference(self, obj):
        booking = self._booking(obj)
        return booking.reference if booking is not None else None

    def booking_state(self, obj):
        booking = self._booking(obj)
        return booking.status if booking is not None else None


class SeatSchema(BaseSchema):
    slot_id = Integer()
    start = ma.fields.String()
    part_of_day = ma.fields.String()
    seats = Integer()


class TokenSchema(BaseSchema):
    entry_token = ma.fields.String()
    part_of_day = ma.fields.String()


class ExcludedSchema(BaseSchema):
    entry_token = ma.fields.String()
    reason = ma.fields.String()


class AllocationSchema(BaseSchema):
    entry_token = ma.fields.String()
    slot_id = Integer()


class DrawResultSchema(BaseSchema):
    draw_id = Integer()
    seed = ma.fields.String()
    seed_commitment = ma.fields.String()
    method = ma.fields.String()
    order = ma.fields.List(ma.fields.String())
    entries = ma.fields.List(ma.fields.Nested(TokenSchema))
    seats = ma.fields.List(ma.fields.Nested(SeatSchema))
    excluded = ma.fields.List(ma.fields.Nested(ExcludedSchema))
    allocations = ma.fields.List(ma.fields.Nested(AllocationSchema))
