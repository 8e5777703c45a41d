"""The public catalogue and the admin's endpoints to manage it."""

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.accounts import services as accounts
from app.accounts.models import KioskDevice
from app.catalogue import services
from app.catalogue.schemas import (
    CentreCreateSchema,
    CentreDetailSchema,
    CentreQuerySchema,
    CentreSummarySchema,
    CentreUpdateSchema,
    ClosureSchema,
    CounterSchema,
    KioskCreateSchema,
    KioskSchema,
    OfferingSchema,
    OfferingUpdateSchema,
    ServiceSchema,
    ServiceUpdateSchema,
)
from app.contract import refusals
from app.errors import Conflict
from app.extensions import db
from app.pagination import SelectPage
from app.security import auth_required

bp = Blueprint("catalogue", __name__, url_prefix="/api/v1", description="Centres and services")
admin_bp = Blueprint(
    "admin_catalogue", __name__, url_prefix="/api/v1/admin", description="Catalogue management"
)


def _centre_detail(centre):
    centre.active_offerings = [o for o in centre.offerings if o.active]
    return centre


@bp.route("/services")
@bp.response(200, ServiceSchema(many=True))
@bp.paginate(SelectPage, page_size=50, max_page_size=200)
def list_services():
    """Services citizens can book or take a ticket for."""
    return services.list_services()


@bp.route("/centres")
@bp.arguments(CentreQuerySchema, location="query")
@bp.response(200, CentreSummarySchema(many=True))
@bp.paginate(SelectPage, page_size=50, max_page_size=200)
def list_centres(args):
    """Centres and embassies, filtered by service, city or kind."""
    return services.list_centres(**args)


@bp.route("/centres/<string:centre_id>")
@bp.response(200, CentreDetailSchema)
def get_centre(centre_id):
    """A centre with its opening hours, closures, services and counters."""
    return _centre_detail(services.get_centre(centre_id))


@admin_bp.route("/centres", methods=["POST"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(CentreCreateSchema)
@admin_bp.response(201, CentreDetailSchema)
def create_centre(args):
    """Add a centre."""
    return _centre_detail(services.create_centre(**args))


@admin_bp.route("/centres/<string:centre_id>", methods=["PATCH"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(CentreUpdateSchema(partial=True))
@admin_bp.response(200, CentreDetailSchema)
def update_centre(args, centre_id):
    """Change a centre (new hours regenerate future free slots)."""
    return _centre_detail(services.update_centre(centre_id, **args))


@admin_bp.route("/centres/<string:centre_id>/counters", methods=["POST"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(CounterSchema)
@admin_bp.response(201, CounterSchema)
def add_counter(args, centre_id):
    """Add a counter."""
    return services.add_counter(centre_id, **args)


@admin_bp.route("/counters/<int:counter_id>", methods=["DELETE"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.response(204)
def remove_counter(counter_id):
    """Remove a counter."""
    services.remove_counter(counter_id)
    return ""


@admin_bp.route("/centres/<string:centre_id>/closures", methods=["POST"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(ClosureSchema)
@admin_bp.response(201, ClosureSchema)
def add_closure(args, centre_id):
    """Close a centre on a day (a holiday)."""
    return services.add_closure(centre_id, **args)


@admin_bp.route("/closures/<int:closure_id>", methods=["DELETE"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.response(204)
def remove_closure(closure_id):
    """Reopen a closed day."""
    services.remove_closure(closure_id)
    return ""


@admin_bp.route("/services", methods=["POST"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(ServiceSchema)
@admin_bp.response(201, ServiceSchema)
def create_service(args):
    """Add a service."""
    return services.create_service(**args)


@admin_bp.route("/services/<string:code>", methods=["PATCH"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(ServiceUpdateSchema(partial=True))
@admin_bp.response(200, ServiceSchema)
def update_service(args, code):
    """Change a service."""
    return services.update_service(code, **args)


@admin_bp.route("/centres/<string:centre_id>/offerings", methods=["POST"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(OfferingSchema)
@admin_bp.response(201, OfferingSchema)
def create_offering(args, centre_id):
    """Offer a service at a centre."""
    return services.create_offering(centre_id, **args)


@admin_bp.route("/offerings/<int:offering_id>", methods=["PATCH"])
@refusals(Conflict)
@auth_required("admin")
@admin_bp.arguments(OfferingUpdateSchema(partial=True))
@admin_bp.response(200, OfferingSchema)
def update_offering(args, offering_id):
    """Change an offering's slots, capacity, reserve or hours."""
    return services.update_offering(offering_id, **args)


@admin_bp.route("/kiosks")
class Kiosks(MethodView):
    @auth_required("admin")
    @admin_bp.response(200, KioskSchema(many=True))
    def get(self):
        """Kiosks of every centre."""
        return db.session.scalars(select(KioskDevice).order_by(KioskDevice.id)).all()

    @auth_required("admin")
    @admin_bp.arguments(KioskCreateSchema)
    @admin_bp.response(201, KioskSchema)
    def post(self, args):
        """Register a kiosk; its token is shown once."""
        services.get_centre(args["centre_id"])
        kiosk, token = accounts.create_kiosk(**args)
        kiosk.token = token
        return kiosk


@admin_bp.route("/kiosks/<int:kiosk_id>/revoke", methods=["POST"])
@auth_required("admin")
@admin_bp.response(200, KioskSchema)
def revoke_kiosk(kiosk_id):
    """Stop a kiosk's token from working."""
    return accounts.revoke_kiosk(kiosk_id=kiosk_id)
