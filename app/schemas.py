"""Schema base shared by every domain: unknown fields are refused, times carry their zone."""

from __future__ import annotations

import marshmallow as ma


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_contains_nul(v) for v in value)
    return False


class BaseSchema(ma.Schema):
    """Refuse unknown fields, so a typo never silently drops input; refuse NUL characters (PostgreSQL can't
    store them in text, and no citizen types one)."""

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def _refuse_nul_characters(self, data, **kwargs):
        if _contains_nul(data):
            raise ma.ValidationError("Text must not contain NUL characters.", field_name="_schema")
        return data


PAGINATION_PARAMETERS = ("page", "page_size")


class QuerySchema(BaseSchema):
    """Query strings: unknown parameters are refused too (pagination's own are read by flask-smorest)."""

    @ma.pre_load
    def _leave_pagination_alone(self, data, **kwargs):
        if any(p in data for p in PAGINATION_PARAMETERS):
            data = {k: v for k, v in data.items() if k not in PAGINATION_PARAMETERS}
        return data
