"""HTTP endpoints of the ticket queue (imported as `ticketing.routes`)."""

from flask_smorest import Blueprint

bp = Blueprint("ticketing", __name__, url_prefix="/api/v1", description="Queue")
