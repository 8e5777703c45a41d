"""Schema base shared by every domain: unknown fields are refused, times carry their zone."""

from __future__ import annotations

import marshmallow as ma


class BaseSchema(ma.Schema):
    """Refuse unknown fields, so a typo never silently drops input."""

    class Meta:
        unknown = ma.RAISE


PAGINATION_PARAMETERS = ("page", "page_size")


class QuerySchema(BaseSchema):
    """Query strings: unknown parameters are refused too (pagination's own are read by flask-smorest)."""

    @ma.pre_load
    def _leave_pagination_alone(self, data, **kwargs):
        if any(p in data for p in PAGINATION_PARAMETERS):
            data = {k: v for k, v in data.items() if k not in PAGINATION_PARAMETERS}
        return data
