"""Bodies of the queue and urgent-passport endpoints."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import marshmallow as ma
from flask_babel import gettext
from marshmallow import validate

from app import clock
from app.errors import local_date_text
from app.schemas import N_, BaseSchema, Integer, QuerySchema

from .models import MAX_VISIT_SERVICES, URGENT_REASONS, URGENT_STATUSES

# An urgent passport is for travel soon: a year ahead is the furthest any citizen plans it.
URGENT_TRAVEL_MAX_DAYS = 365


def _within_a_year(value: dt.date) -> None:
    # A day of slack on each side: the citizen's and the centre's "today" may differ from UTC's.
    latest = clock.now().date() + dt.timedelta(days=URGENT_TRAVEL_MAX_DAYS + 1)
    if value > latest:
        raise ma.ValidationError(
            gettext("Choose a date within a year: on or before %(date)s.", date=local_date_text(latest))
        )


SERVICE_CODE = validate.Length(min=3, max=64)


class LocalDateTime(ma.fields.AwareDateTime):
    """An instant shown with the offset of the centre it belongs to (the object's `timezone`)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        zone = obj.get("timezone") if isinstance(obj, dict) else getattr(obj, "timezone", None)
        if zone:
            value = value.astimezone(zoneinfo.ZoneInfo(zone))
        return super()._serialize(value, attr, obj, **kwargs)


class CounterRefSchema(BaseSchema):
    id = Integer()
    number = Integer()
    name_ar = ma.fields.String()
    name_en = ma.fields.String()


def _no_repeats(codes: list[str]) -> None:
    if len(set(codes)) != len(codes):
        raise ma.ValidationError(gettext("Choose each service once."))


class TicketCreateSchema(BaseSchema):
    service = ma.fields.String(
        validate=SERVICE_CODE, metadata={"description": "One service (or give `services`)"}
    )
    services = ma.fields.List(
        ma.fields.String(validate=SERVICE_CODE),
        validate=[validate.Length(min=1, max=MAX_VISIT_SERVICES), _no_repeats],
        metadata={
            "description": "Several services in one visit, served in this order on one ticket (1–4, each "
            "once, each offered at the centre, else 422 `visit_service_not_offered` naming it)",
            "example": ["passport_renewal", "civil_id_renewal"],
        },
    )
    vulnerable = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Elderly, disabled or pregnant visitor (kiosk/staff; the app asks the registry)"
        },
    )

    @ma.validates_schema
    def _one_way(self, data, **kwargs):
        if ("service" in data) == ("services" in data):
            raise ma.ValidationError(gettext("Give either a service or a list of services."), "services")


class UrgentTicketCreateSchema(BaseSchema):
    service = ma.fields.String(required=True, validate=SERVICE_CODE)
    reason = ma.fields.String(required=True, validate=validate.Length(min=3, max=1000))


class CheckInSchema(BaseSchema):
    reference = ma.fields.String(required=True, validate=validate.Length(min=3, max=40))


class TicketSchema(BaseSchema):
    ticket_id = Integer(attribute="id", dump_only=True)
    id = Integer(dump_only=True)
    public_id = ma.fields.String(
        dump_only=True,
        metadata={
            "description": "The ticket's public page is `/t/{public_id}` (unguessable; not the ticket id)",
            "example": "q8Zk3vN0xTYa1bWc",
        },
    )
    number = ma.fields.String(dump_only=True, metadata={"example": "P-042"})
    centre_id = ma.fields.String(dump_only=True)
    timezone = ma.fields.String(dump_only=True)
    service = ma.fields.String(
        attribute="service_code", dump_only=True, metadata={"description": "The current service"}
    )
    services = ma.fields.List(
        ma.fields.String(), dump_only=True, metadata={"description": "Every service of the visit, in order"}
    )
    current_service = ma.fields.String(
        dump_only=True, metadata={"description": "The service whose queue the ticket is in"}
    )
    services_left = Integer(dump_only=True, metadata={"description": "Services to come after this one"})
    party_size = Integer(dump_only=True, metadata={"description": "People served on this ticket (a family)"})
    source = ma.fields.String(
        dump_only=True, metadata={"enum": ["walk_in", "appointment", "urgent", "remote"]}
    )
    priority = Integer(dump_only=True, metadata={"description": "0 urgent, 1 appointment, 2 other"})
    vulnerable = ma.fields.Boolean(dump_only=True)
    status = ma.fields.String(dump_only=True)
    position = Integer(
        dump_only=True, allow_none=True, metadata={"description": "1 = next; 0 = called or being served"}
    )
    estimated_wait_minutes = Integer(dump_only=True, allow_none=True)
    issued_at = LocalDateTime(dump_only=True)
    appointment_at = LocalDateTime(dump_only=True, allow_none=True)
    called_at = LocalDateTime(dump_only=True, allow_none=True)
    started_at = LocalDateTime(dump_only=True, allow_none=True)
    ended_at = LocalDateTime(dump_only=True, allow_none=True)
    counter = ma.fields.Nested(CounterRefSchema, dump_only=True, allow_none=True)
    recall_count = Integer(dump_only=True)
    booking_id = Integer(dump_only=True, allow_none=True)
    transferred_from_id = Integer(dump_only=True, allow_none=True)
    rating = Integer(dump_only=True, allow_none=True)
    rating_comment = ma.fields.String(dump_only=True, allow_none=True)


class RatingSchema(BaseSchema):
    score = Integer(required=True, minimum=1, maximum=5)
    comment = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))


class CounterOpenSchema(BaseSchema):
    services = ma.fields.List(
        ma.fields.String(validate=SERVICE_CODE), required=True, validate=validate.Length(min=1, max=20)
    )
    force = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "A supervisor takes over a counter another clerk holds (audited); "
            "without it that is `counter_taken`"
        },
    )


PAUSE_REASON_MAX = 200


class CounterPauseSchema(BaseSchema):
    reason = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=PAUSE_REASON_MAX),
        metadata={"description": "Why the counter is paused (shown on the floor view)", "example": "break"},
    )


class CounterSessionSchema(BaseSchema):
    id = Integer(dump_only=True)
    counter_id = Integer(dump_only=True)
    account_id = Integer(dump_only=True)
    services = ma.fields.List(ma.fields.String(), dump_only=True)
    opened_at = ma.fields.AwareDateTime(dump_only=True)
    closed_at = ma.fields.AwareDateTime(dump_only=True, allow_none=True)
    open = ma.fields.Function(lambda s: s.closed_at is None, dump_only=True)
    paused = ma.fields.Function(lambda s: s.paused_at is not None, dump_only=True)
    paused_at = ma.fields.AwareDateTime(dump_only=True, allow_none=True)
    pause_reason = ma.fields.String(dump_only=True, allow_none=True)


class WaitingEntrySchema(BaseSchema):
    ticket_id = Integer()
    number = ma.fields.String()
    service = ma.fields.String()
    source = ma.fields.String()


COUNTER_STATES = ["closed", "open", "paused", "serving"]


class CounterStateSchema(BaseSchema):
    counter = ma.fields.Nested(CounterRefSchema)
    centre_id = ma.fields.String()
    timezone = ma.fields.String()
    open = ma.fields.Boolean()
    state = ma.fields.String(
        metadata={"enum": COUNTER_STATES, "description": "serving: a ticket is called or being served there"}
    )
    account_id = Integer(allow_none=True, metadata={"description": "The clerk holding the counter"})
    since = LocalDateTime(allow_none=True, metadata={"description": "When the clerk opened it"})
    paused = ma.fields.Boolean()
    paused_at = LocalDateTime(allow_none=True)
    pause_reason = ma.fields.String(allow_none=True)
    services = ma.fields.List(ma.fields.String())
    current = ma.fields.Nested(TicketSchema, allow_none=True)
    waiting = ma.fields.List(
        ma.fields.Nested(WaitingEntrySchema), metadata={"description": "First 50, in call order"}
    )
    waiting_total = Integer()


class FloorTicketSchema(BaseSchema):
    ticket_id = Integer()
    number = ma.fields.String()
    service = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["called", "serving"]})
    called_at = LocalDateTime(allow_none=True)
    started_at = LocalDateTime(allow_none=True)


class FloorCounterSchema(BaseSchema):
    id = Integer()
    number = Integer()
    name_ar = ma.fields.String()
    name_en = ma.fields.String()
    counter = ma.fields.Nested(CounterRefSchema)
    state = ma.fields.String(
        metadata={"enum": COUNTER_STATES, "description": "serving: a ticket is called or being served there"}
    )
    open = ma.fields.Boolean()
    account_id = Integer(allow_none=True)
    clerk_name = ma.fields.String(allow_none=True)
    services = ma.fields.List(ma.fields.String())
    since = LocalDateTime(allow_none=True, metadata={"description": "When its clerk opened it"})
    paused = ma.fields.Boolean()
    paused_at = LocalDateTime(allow_none=True)
    pause_reason = ma.fields.String(allow_none=True)
    current = ma.fields.Nested(FloorTicketSchema, allow_none=True)


class FloorSummarySchema(BaseSchema):
    closed = Integer()
    open = Integer()
    paused = Integer()
    serving = Integer()


class FloorSchema(BaseSchema):
    centre_id = ma.fields.String()
    timezone = ma.fields.String()
    counters = ma.fields.List(ma.fields.Nested(FloorCounterSchema), metadata={"description": "By number"})
    summary = ma.fields.Nested(FloorSummarySchema, metadata={"description": "Counters in each state"})
    at = LocalDateTime()


class PublicServiceSchema(BaseSchema):
    code = ma.fields.String()
    name_ar = ma.fields.String()
    name_en = ma.fields.String()


class PublicTicketSchema(BaseSchema):
    """What a ticket's public page shows: nothing that names the visitor."""

    public_id = ma.fields.String()
    number = ma.fields.String(metadata={"example": "P-042"})
    service = ma.fields.String()
    services = ma.fields.List(ma.fields.Nested(PublicServiceSchema))
    status = ma.fields.String()
    position = Integer(allow_none=True, metadata={"description": "1 = next; 0 = called or being served"})
    estimated_wait_minutes = Integer(allow_none=True)
    counter = ma.fields.Nested(CounterRefSchema, allow_none=True, metadata={"description": "Once called"})
    centre_id = ma.fields.String()
    centre_name_ar = ma.fields.String()
    centre_name_en = ma.fields.String()
    timezone = ma.fields.String()
    issued_at = LocalDateTime()
    called_at = LocalDateTime(allow_none=True)


class TransferSchema(BaseSchema):
    service = ma.fields.String(required=True, validate=SERVICE_CODE)


class CallSchema(BaseSchema):
    ticket_id = Integer()
    number = ma.fields.String()
    service = ma.fields.String()
    counter = ma.fields.Nested(CounterRefSchema, allow_none=True)
    called_at = ma.fields.String(allow_none=True)
    recall_count = Integer()


class ServiceWaitingSchema(BaseSchema):
    code = ma.fields.String()
    name_ar = ma.fields.String()
    name_en = ma.fields.String()
    prefix = ma.fields.String()
    waiting = Integer()


class QueueSnapshotSchema(BaseSchema):
    centre_id = ma.fields.String()
    name_ar = ma.fields.String()
    name_en = ma.fields.String()
    timezone = ma.fields.String()
    services = ma.fields.List(ma.fields.Nested(ServiceWaitingSchema))
    waiting = ma.fields.Dict(keys=ma.fields.String(), values=Integer())
    recent_calls = ma.fields.List(ma.fields.Nested(CallSchema))
    open_counters = Integer()
    at = ma.fields.String()


class UrgentRequestCreateSchema(BaseSchema):
    service = ma.fields.String(required=True, validate=SERVICE_CODE)
    centre_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    reason_code = ma.fields.String(required=True, validate=validate.OneOf(URGENT_REASONS))
    travel_date = ma.fields.Date(required=True, validate=_within_a_year)
    details = ma.fields.String(load_default="", validate=validate.Length(max=2000))
    applicant = ma.fields.String(
        validate=validate.Regexp(r"^\d{10}$", error=N_("A national number has 10 digits.")),
        metadata={
            "description": "The national id of a minor the citizen is a guardian of (on the travel date), "
            "when the urgent passport is theirs. Default: the citizen."
        },
    )


class UrgentRequestSchema(BaseSchema):
    id = Integer(dump_only=True)
    status = ma.fields.String(dump_only=True, metadata={"enum": list(URGENT_STATUSES)})
    service = ma.fields.String(attribute="service_code", dump_only=True)
    centre_id = ma.fields.String(dump_only=True)
    timezone = ma.fields.String(dump_only=True)
    reason_code = ma.fields.String(dump_only=True)
    travel_date = ma.fields.Date(dump_only=True)
    details = ma.fields.String(dump_only=True)
    created_at = LocalDateTime(dump_only=True)
    decided_at = LocalDateTime(dump_only=True, allow_none=True)
    note = ma.fields.String(dump_only=True, allow_none=True)
    approved_date = ma.fields.Date(dump_only=True, allow_none=True)
    booking_id = Integer(dump_only=True, allow_none=True)
    applicant = ma.fields.String(
        attribute="applicant_national_id",
        dump_only=True,
        allow_none=True,
        metadata={"description": "The dependent the pass is for (null: the citizen)"},
    )


class StaffUrgentRequestSchema(UrgentRequestSchema):
    account_id = Integer(dump_only=True)
    decided_by = Integer(dump_only=True, allow_none=True)


class UrgentStatusQuerySchema(QuerySchema):
    status = ma.fields.String(validate=validate.OneOf(URGENT_STATUSES))


class ApproveSchema(BaseSchema):
    date = ma.fields.Date(required=True, validate=_within_a_year)
    note = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))


class RejectSchema(BaseSchema):
    note = ma.fields.String(required=True, validate=validate.Length(min=1, max=1000))


class AuditEntrySchema(BaseSchema):
    id = Integer()
    actor_id = Integer(allow_none=True)
    actor_role = ma.fields.String()
    action = ma.fields.String()
    subject_type = ma.fields.String()
    subject_id = ma.fields.String()
    centre_id = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    created_at = ma.fields.AwareDateTime()


class StatsQuerySchema(QuerySchema):
    date = ma.fields.Date(load_default=None)


class _Mean(BaseSchema):
    mean = ma.fields.Float(allow_none=True)
    count = Integer()


class _Waits(_Mean):
    p90 = ma.fields.Float(allow_none=True)


class CounterFiguresSchema(BaseSchema):
    counter_id = Integer()
    number = Integer(allow_none=True)
    name_ar = ma.fields.String(allow_none=True)
    name_en = ma.fields.String(allow_none=True)
    called = Integer()
    done = Integer()


class HourFiguresSchema(BaseSchema):
    hour = Integer(metadata={"description": "Centre-local hour, 0–23"})
    issued = Integer(metadata={"description": "Visits issued in that hour"})
    served = Integer(metadata={"description": "Tickets finished (`done`) in that hour"})


class ServiceFiguresSchema(BaseSchema):
    service_code = ma.fields.String()
    name_ar = ma.fields.String()
    name_en = ma.fields.String()
    issued = Integer()
    served = Integer(metadata={"description": "Tickets finished (`done`) at this service, their last"})
    services_served = Integer(
        metadata={"description": "Times this service was served, on any ticket (one of several services too)"}
    )
    waiting = Integer()
    mean_wait_minutes = ma.fields.Float(allow_none=True)
    p90_wait_minutes = ma.fields.Float(allow_none=True)
    wait_count = Integer()


class CounterCountsSchema(BaseSchema):
    open = Integer(metadata={"description": "Counters open (paused ones included)"})
    paused = Integer()
    serving = Integer(metadata={"description": "Working counters with a ticket called or being served"})


class UrgentReserveSchema(BaseSchema):
    used = Integer()
    total = Integer()


class StatsSchema(BaseSchema):
    centre_id = ma.fields.String()
    timezone = ma.fields.String()
    date = ma.fields.Date()
    tickets = Integer(metadata={"description": "Visits (tickets not created by a transfer)"})
    by_source = ma.fields.Dict(keys=ma.fields.String(), values=Integer())
    by_status = ma.fields.Dict(keys=ma.fields.String(), values=Integer())
    wait_minutes = ma.fields.Nested(_Waits)
    service_minutes = ma.fields.Nested(_Mean)
    no_show_rate = ma.fields.Float(allow_none=True)
    per_counter = ma.fields.List(ma.fields.Nested(CounterFiguresSchema))
    rating = ma.fields.Nested(_Mean)
    served = Integer(metadata={"description": "Tickets finished (`done`)"})
    by_hour = ma.fields.List(
        ma.fields.Nested(HourFiguresSchema),
        metadata={"description": "Over the day's opening hours and any hour with activity"},
    )
    by_service = ma.fields.List(ma.fields.Nested(ServiceFiguresSchema))
    satisfaction = ma.fields.Nested(_Mean, metadata={"description": "Ratings 1–5 of the day's visits"})
    counters = ma.fields.Nested(CounterCountsSchema, metadata={"description": "The floor right now"})
    urgent_reserve = ma.fields.Nested(
        UrgentReserveSchema, metadata={"description": "Urgent passes used of the day's reserve"}
    )
