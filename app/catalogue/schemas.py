"""Bodies of the catalogue's public and admin endpoints."""

import re
import zoneinfo

import marshmallow as ma
from marshmallow import validate

from app.catalogue.models import ALLOCATIONS, CENTRE_KINDS, ELIGIBILITY_RULES
from app.schemas import N_, BaseSchema, Integer, QuerySchema

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", error=N_("Use lowercase letters, digits and hyphens."))
SERVICE_CODE = validate.Regexp(r"^[a-z_]+\.[a-z_]+$", error=N_("A service code looks like `group.name`."))
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# A closing time may be "24:00": open until midnight (around the clock with "00:00"-"24:00").
HHMM_CLOSE = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"


def _valid_zone(value: str) -> bool:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ma.ValidationError(N_("Unknown IANA time zone.")) from None
    return True


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def _valid_hours(value: dict) -> bool:
    for day, intervals in value.items():
        if day not in WEEKDAYS:
            raise ma.ValidationError(f"Unknown weekday {day!r}; use {', '.join(WEEKDAYS)}.")
        if not isinstance(intervals, list):
            raise ma.ValidationError(N_("Each weekday holds a list of [open, close] pairs."))
        previous_close = ""
        for pair in intervals:
            if (
                not isinstance(pair, list | tuple)
                or len(pair) != 2
                or not all(isinstance(t, str) for t in pair)
                or not _matches(HHMM, pair[0])
                or not _matches(HHMM_CLOSE, pair[1])
            ):
                raise ma.ValidationError(N_('Each interval is ["HH:MM", "HH:MM"].'))
            if pair[0] >= pair[1] or pair[0] < previous_close:
                raise ma.ValidationError(N_("Intervals must close after they open and not overlap."))
            previous_close = pair[1]
    return True


class WeeklyHoursField(ma.fields.Dict):
    """`{"sun": [["08:00", "15:00"]], …}` in the centre's local time."""

    def __init__(self, **kwargs):
        super().__init__(
            keys=ma.fields.String(),
            values=ma.fields.List(ma.fields.List(ma.fields.String())),
            validate=_valid_hours,
            **kwargs,
        )


class CounterSchema(BaseSchema):
    id = Integer(dump_only=True)
    number = Integer(required=True, minimum=1, maximum=999)
    name_ar = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    name_en = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    name = ma.fields.Method("localised_name", dump_only=True)

    def localised_name(self, obj):
        from flask_babel import get_locale

        locale = get_locale()
        return obj.name_ar if locale is not None and locale.language == "ar" else obj.name_en


class ClosureSchema(BaseSchema):
    id = Integer(dump_only=True)
    date = ma.fields.Date(required=True)
    reason_ar = ma.fields.String(load_default="", validate=validate.Length(max=200))
    reason_en = ma.fields.String(load_default="", validate=validate.Length(max=200))


class ServiceSchema(BaseSchema):
    code = ma.fields.String(required=True, validate=SERVICE_CODE)
    name_ar = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    name_en = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    agency_ar = ma.fields.String(load_default="", validate=validate.Length(max=200))
    agency_en = ma.fields.String(load_default="", validate=validate.Length(max=200))
    group = ma.fields.String(dump_only=True, metadata={"description": "Part of the code before the dot"})
    avg_service_minutes = Integer(load_default=10, minimum=1, maximum=480)
    ticket_prefix = ma.fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{1,2}$"))
    high_demand = ma.fields.Boolean(load_default=False)
    eligibility = ma.fields.String(load_default="none", validate=validate.OneOf(ELIGIBILITY_RULES))
    active = ma.fields.Boolean(load_default=True)


class ServiceUpdateSchema(ServiceSchema):
    """Used with `partial=True`: absent fields stay as they are (no defaults applied)."""

    class Meta:
        exclude = ("code",)


class OfferingSchema(BaseSchema):
    id = Integer(dump_only=True)
    centre_id = ma.fields.String(dump_only=True)
    service = ma.fields.String(required=True, attribute="service_code", validate=SERVICE_CODE)
    slot_minutes = Integer(load_default=20, minimum=5, maximum=480)
    capacity = Integer(load_default=2, minimum=1, maximum=500)
    walk_in_share = Integer(
        load_default=0,
        minimum=0,
        maximum=100,
        metadata={"description": "Percent of capacity kept for walk-ins"},
    )
    urgent_reserve_per_day = Integer(load_default=0, minimum=0, maximum=500)
    horizon_days = Integer(load_default=None, allow_none=True, minimum=1, maximum=365)
    weekly_hours = WeeklyHoursField(
        load_default=None, allow_none=True, metadata={"description": "Overrides the centre's hours when set"}
    )
    active = ma.fields.Boolean(load_default=True)
    allocation = ma.fields.String(
        load_default="first_come",
        validate=validate.OneOf(ALLOCATIONS),
        metadata={"description": "first_come, or draw (seats given by draws)"},
    )


class OfferingUpdateSchema(OfferingSchema):
    """Used with `partial=True`."""

    class Meta:
        exclude = ("service",)


class CentreSummarySchema(BaseSchema):
    id = ma.fields.String(required=True, validate=SLUG)
    name_ar = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    name_en = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    city = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    kind = ma.fields.String(required=True, validate=validate.OneOf(CENTRE_KINDS))
    timezone = ma.fields.String(required=True, validate=_valid_zone)
    address_ar = ma.fields.String(load_default="", validate=validate.Length(max=300))
    address_en = ma.fields.String(load_default="", validate=validate.Length(max=300))
    remote_tickets_enabled = ma.fields.Boolean(load_default=False)


class CentreCreateSchema(CentreSummarySchema):
    weekly_hours = WeeklyHoursField(load_default=dict)


class CentreUpdateSchema(CentreCreateSchema):
    """Used with `partial=True`."""

    class Meta:
        exclude = ("id",)


class CentreDetailSchema(CentreSummarySchema):
    weekly_hours = WeeklyHoursField()
    closures = ma.fields.Method("upcoming_closures")
    services = ma.fields.Method("offered_services")
    offerings = ma.fields.List(ma.fields.Nested(OfferingSchema), attribute="active_offerings")
    counters = ma.fields.List(ma.fields.Nested(CounterSchema))

    def upcoming_closures(self, centre):
        from app.catalogue.services import upcoming_closures

        return ClosureSchema(many=True).dump(upcoming_closures(centre))

    def offered_services(self, centre):
        return [o.service_code for o in centre.offerings if o.active]


class CentreQuerySchema(QuerySchema):
    service = ma.fields.String(validate=SERVICE_CODE)
    city = ma.fields.String(validate=validate.Length(max=100))
    kind = ma.fields.String(validate=validate.OneOf(CENTRE_KINDS))


class KioskCreateSchema(BaseSchema):
    centre_id = ma.fields.String(required=True, validate=SLUG)
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))


class KioskSchema(BaseSchema):
    id = Integer()
    centre_id = ma.fields.String()
    name = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    revoked_at = ma.fields.AwareDateTime(allow_none=True)
    token = ma.fields.String(metadata={"description": "Shown once, when the kiosk is created"})
