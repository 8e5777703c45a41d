"""Request and response bodies of the notifications endpoints."""

from __future__ import annotations

import marshmallow as ma

from app.schemas import BaseSchema, Integer, QuerySchema
from notifications.models import PLATFORMS


class DeviceRegisterSchema(BaseSchema):
    token = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=1024),
        metadata={"description": "The FCM registration token of this app install."},
    )
    platform = ma.fields.String(required=True, validate=ma.validate.OneOf(PLATFORMS))
    device_id = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=100),
        metadata={"description": "A stable id of the install; a new token for the same id replaces the old."},
    )


class DeviceSchema(BaseSchema):
    id = Integer(dump_only=True)
    token = ma.fields.String(dump_only=True)
    platform = ma.fields.String(dump_only=True)
    device_id = ma.fields.String(dump_only=True)
    created_at = ma.fields.AwareDateTime(dump_only=True)
    updated_at = ma.fields.AwareDateTime(dump_only=True)


class NotificationQuerySchema(QuerySchema):
    unread = ma.fields.Boolean(metadata={"description": "Only unread (true) or only read (false) ones."})


class NotificationSchema(BaseSchema):
    id = Integer(dump_only=True)
    kind = ma.fields.String(dump_only=True)
    language = ma.fields.String(dump_only=True, metadata={"description": "Language the text was written in."})
    title = ma.fields.String(dump_only=True)
    body = ma.fields.String(dump_only=True)
    data = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        dump_only=True,
        metadata={
            "description": "What the app routes on: kind, reference / ticket_id / request_id, centre_id…"
        },
    )
    created_at = ma.fields.AwareDateTime(dump_only=True)
    read_at = ma.fields.AwareDateTime(dump_only=True, allow_none=True)


class ReadAllSchema(BaseSchema):
    updated = Integer(dump_only=True)
