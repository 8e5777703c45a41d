"""HTTP endpoints of the notifications domain."""

from flask_smorest import Blueprint

bp = Blueprint("notifications", __name__, url_prefix="/api/v1", description="Notifications")
