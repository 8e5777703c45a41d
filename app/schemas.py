"""Schema base shared by every domain: unknown fields are refused, times carry their zone."""

from __future__ import annotations

import marshmallow as ma


class BaseSchema(ma.Schema):
    """Refuse unknown fields, so a typo never silently drops input."""

    class Meta:
        unknown = ma.RAISE


class QuerySchema(BaseSchema):
    """Query strings: unknown parameters are refused too."""
