"""Schema base shared by every domain: unknown fields are refused, integers are whole and fit their column,
NUL characters are refused under the field's own name."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

# PostgreSQL's `integer` (every id and count column): a larger number is a 422, never an overflow 500.
DB_INT_MIN = -(2**31)
DB_INT_MAX = 2**31 - 1


def N_(message: str) -> str:
    """Mark a message for the catalogs (`make extract-messages`); it is translated when the error is sent."""
    return message


NUL_MESSAGE = N_("Text must not contain NUL characters.")


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_contains_nul(v) for v in value)
    return False


class Integer(ma.fields.Integer):
    """A whole number inside the database column: `5.5` and `"5"` are refused, and so is 2**31.

    Every integer field of the API is this one, so the bounds are checked (and documented, as the
    OpenAPI `minimum`/`maximum`) in one place; `minimum`/`maximum` narrow them.
    """

    def __init__(self, *, minimum: int = DB_INT_MIN, maximum: int = DB_INT_MAX, **kwargs):
        validators = kwargs.pop("validate", None)
        validators = [validators] if callable(validators) else list(validators or [])
        super().__init__(
            strict=True,
            validate=[
                validate.Range(min=max(minimum, DB_INT_MIN), max=min(maximum, DB_INT_MAX)),
                *validators,
            ],
            **kwargs,
        )


class Id(Integer):
    """A row id: 1 up to the column's maximum."""

    def __init__(self, **kwargs):
        super().__init__(minimum=1, **kwargs)


class BaseSchema(ma.Schema):
    """Refuse unknown fields, so a typo never silently drops input; refuse NUL characters (PostgreSQL can't
    store them in text, and no citizen types one), each under the name of the field that carries it."""

    class Meta:
        unknown = ma.RAISE

    @ma.validates_schema(pass_original=True, skip_on_field_errors=False)
    def _refuse_nul_characters(self, data, original, **kwargs):
        if not isinstance(original, dict):
            return
        fields = [str(key) for key, value in original.items() if _contains_nul(key) or _contains_nul(value)]
        if fields:
            # Raised after the fields are read, so their own errors are kept beside this one.
            raise ma.ValidationError({name: [NUL_MESSAGE] for name in fields})


PAGINATION_PARAMETERS = ("page", "page_size")


class QuerySchema(BaseSchema):
    """Query strings: unknown parameters are refused too (pagination's own are read by flask-smorest)."""

    @ma.pre_load
    def _leave_pagination_alone(self, data, **kwargs):
        if any(p in data for p in PAGINATION_PARAMETERS):
            data = {k: v for k, v in data.items() if k not in PAGINATION_PARAMETERS}
        return data


# marshmallow's and webargs' own messages (as marshmallow 4.4 words them), for the catalogs: a field error
# is translated when the error is sent (app.errors.localise_field_messages), matched against these.
LIBRARY_MESSAGES = (
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Invalid type."),
    N_("Invalid input type."),
    N_("Unknown field."),
    N_("Not a valid list."),
    N_("Not a valid tuple."),
    N_("Not a valid string."),
    N_("Not a valid utf-8 string."),
    N_("Not a valid UUID."),
    N_("Not a valid number."),
    N_("Number too large."),
    N_("Not a valid integer."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("Not a valid boolean."),
    N_("Not a valid datetime."),
    N_("Not a valid aware datetime."),
    N_("Not a valid naive datetime."),
    N_("Not a valid date."),
    N_("Not a valid time."),
    N_("Not a valid period of time."),
    N_("Not a valid mapping type."),
    N_("Not a valid URL."),
    N_("Not a valid email address."),
    N_("Must be one of: {choices}."),
    N_("Must be greater than or equal to {min}."),
    N_("Must be greater than {min}."),
    N_("Must be less than or equal to {max}."),
    N_("Must be less than {max}."),
    N_("Must be greater than or equal to {min} and less than or equal to {max}."),
    N_("Shorter than minimum length {min}."),
    N_("Longer than maximum length {max}."),
    N_("Length must be between {min} and {max}."),
    N_("Length must be {equal}."),
    N_("Must be equal to {other}."),
    N_("String does not match expected pattern."),
    N_("Invalid input."),
    N_("One or more of the choices you made was not in: {choices}."),
    N_("Invalid JSON body."),
)
