"""Refusals of the notifications domain (mapped to the error envelope by app.errors)."""

from flask_babel import lazy_gettext as _l

from app.errors import NotFound


class DeviceNotFound(NotFound):
    message = _l("This device is not registered to your account.")


class NotificationNotFound(NotFound):
    message = _l("This notification was not found.")
