"""Registration, phone verification, sign-in, token rotation and the citizen's profile."""

from flask.views import MethodView
from flask_smorest import Blueprint

from app.accounts import errors, services
from app.accounts.schemas import (
    AccountSchema,
    DependentSchema,
    DependentsQuerySchema,
    LoginSchema,
    ProfileUpdateSchema,
    RefreshSchema,
    RegisteredSchema,
    RegisterSchema,
    ResendCodeSchema,
    TokenPairSchema,
    VerifyPhoneSchema,
)
from app.contract import refusals
from app.extensions import client_ip
from app.ratelimit import limit_codes, limit_logins
from app.security import auth_required, require_principal

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Registration and sign-in")
me_bp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="The signed-in account")


@bp.route("/register", methods=["POST"])
@refusals(errors.IdentityMismatch, errors.InvalidPhone, errors.WeakPassword, errors.AccountExists)
@limit_codes()
@bp.arguments(RegisterSchema)
@bp.response(201, RegisteredSchema)
def register(args):
    """Register a citizen checked against the civil registry; a code is texted to the phone."""
    account = services.register_citizen(**args)
    return {"national_id": account.national_id, "phone": account.phone, "status": "pending_verification"}


@bp.route("/resend-code", methods=["POST"])
@limit_codes()
@bp.arguments(ResendCodeSchema)
@bp.response(202)
def resend_code(args):
    """Text a new verification code (answers the same whether or not the account exists)."""
    services.resend_phone_code(national_id=args["national_id"])
    return ""


@bp.route("/verify-phone", methods=["POST"])
@refusals(errors.CodeInvalid, errors.CodeExpired)
@limit_codes()
@bp.arguments(VerifyPhoneSchema)
@bp.response(200, TokenPairSchema)
def verify_phone(args):
    """Enter the texted code; answers the first pair of tokens."""
    return services.verify_phone(**args)


@bp.route("/login", methods=["POST"])
@refusals(
    errors.InvalidCredentials,
    errors.AccountLocked,
    errors.SignInThrottled,
    errors.PhoneNotVerified,
    errors.CodeInvalid,
    errors.CodeExpired,
)
@limit_logins()
@bp.arguments(LoginSchema)
@bp.response(200, TokenPairSchema)
def login(args):
    """Sign in with national number and password (plus a texted `code` when throttled or locked)."""
    return services.login(
        national_id=args["national_id"], password=args["password"], address=client_ip(), code=args.get("code")
    )


@bp.route("/login-code", methods=["POST"])
@limit_codes()
@bp.arguments(ResendCodeSchema)
@bp.response(202)
def login_code(args):
    """Text a one-time sign-in code to the phone on file (answers the same whether or not the id exists)."""
    services.send_login_code(national_id=args["national_id"])
    return ""


@bp.route("/refresh", methods=["POST"])
@refusals(errors.RefreshRejected)
@limit_logins()
@bp.arguments(RefreshSchema)
@bp.response(200, TokenPairSchema)
def refresh(args):
    """Exchange a refresh token for a new pair; a reused refresh token ends the whole session."""
    return services.refresh_session(refresh_token=args["refresh_token"])


@bp.route("/logout", methods=["POST"])
@refusals(errors.RefreshRejected)
@bp.arguments(RefreshSchema)
@bp.response(204)
def logout(args):
    """End the session the refresh token belongs to."""
    services.logout(refresh_token=args["refresh_token"])
    return ""


@me_bp.route("")
class Me(MethodView):
    @auth_required("citizen", "staff", "admin")
    @me_bp.response(200, AccountSchema)
    def get(self):
        """The signed-in account."""
        return services.get_account(require_principal().id)

    @auth_required("citizen", "staff", "admin")
    @me_bp.arguments(ProfileUpdateSchema)
    @me_bp.response(200, AccountSchema)
    def patch(self, args):
        """Change the preferred language of messages and notifications."""
        return services.update_profile(account_id=require_principal().id, **args)


@me_bp.route("/dependents")
@auth_required("citizen")
@me_bp.arguments(DependentsQuerySchema, location="query")
@me_bp.response(200, DependentSchema(many=True))
def dependents(args):
    """The minors (under 18 on the visit's date, `on`, default today) the citizen is a guardian of."""
    return services.get_dependents(account_id=require_principal().id, on=args.get("on"))
