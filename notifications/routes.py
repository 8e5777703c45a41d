"""HTTP endpoints of the notifications domain: the caller's devices and inbox."""

from flask_smorest import Blueprint

from app.pagination import SelectPage
from app.security import auth_required, require_principal
from notifications import services
from notifications.schemas import (
    DeviceRegisterSchema,
    DeviceSchema,
    NotificationQuerySchema,
    NotificationSchema,
    ReadAllSchema,
)

# /api/v1/me itself belongs to accounts' `me_bp`; these full paths live on this domain's own blueprint.
bp = Blueprint("notifications", __name__, url_prefix="/api/v1", description="Notifications")


@bp.route("/me/devices", methods=["POST"])
@auth_required("citizen")
@bp.arguments(DeviceRegisterSchema)
@bp.response(201, DeviceSchema, description="A new device for this account (or a token moved to it).")
@bp.alt_response(200, schema=DeviceSchema, description="An already registered device, refreshed.")
def register_device(args):
    """Register this install's FCM token, or refresh it; a token belongs to one account at a time."""
    device, created = services.register_device(account_id=require_principal("citizen").id, **args)
    return device, 201 if created else 200


@bp.route("/me/devices", methods=["GET"])
@auth_required("citizen")
@bp.response(200, DeviceSchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_devices():
    """The devices that receive this account's push notifications."""
    return services.list_devices(account_id=require_principal("citizen").id)


@bp.route("/me/devices/<int:device_id>", methods=["DELETE"])
@auth_required("citizen")
@bp.response(204)
def delete_device(device_id):
    """Stop push notifications to one of this account's devices (e.g. at sign-out)."""
    services.delete_device(account_id=require_principal("citizen").id, device_pk=device_id)


@bp.route("/me/notifications", methods=["GET"])
@auth_required("citizen")
@bp.arguments(NotificationQuerySchema, location="query")
@bp.response(200, NotificationSchema(many=True))
@bp.paginate(SelectPage, page_size=20, max_page_size=100)
def list_notifications(args):
    """This account's notifications, newest first, in the language they were written in."""
    return services.list_notifications(account_id=require_principal("citizen").id, **args)


@bp.route("/me/notifications/<int:notification_id>/read", methods=["POST"])
@auth_required("citizen")
@bp.response(200, NotificationSchema)
def mark_notification_read(notification_id):
    """Mark one notification read (repeating it changes nothing)."""
    return services.mark_notification_read(
        account_id=require_principal("citizen").id, notification_id=notification_id
    )


@bp.route("/me/notifications/read-all", methods=["POST"])
@auth_required("citizen")
@bp.response(200, ReadAllSchema)
def mark_all_notifications_read():
    """Mark every notification of this account read."""
    return {"updated": services.mark_all_read(account_id=require_principal("citizen").id)}
