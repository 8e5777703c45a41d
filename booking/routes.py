"""HTTP endpoints of the booking domain."""

from flask_smorest import Blueprint

bp = Blueprint("booking", __name__, url_prefix="/api/v1", description="Booking")
