"""Refusals of the accounts domain."""

from flask_babel import lazy_gettext as _l

from app.errors import AppError, Conflict, Forbidden, Unauthorized, ValidationFailed


class IdentityMismatch(ValidationFailed):
    code = "identity_mismatch"
    message = _l("The national number and date of birth do not match the civil registry.")


class InvalidPhone(ValidationFailed):
    code = "invalid_phone"
    message = _l("Enter a valid mobile number (with the country code if it is not Jordanian).")


class WeakPassword(ValidationFailed):
    code = "weak_password"
    message = _l("Choose a password of at least 10 characters with letters and digits.")


class AccountExists(Conflict):
    code = "account_exists"
    message = _l("An account already exists for this national number. Sign in instead.")


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = _l("The national number or password is wrong.")


class AccountLocked(AppError):
    status = 429
    code = "account_locked"
    message = _l(
        "Too many failed sign-ins from this connection. "
        "Try again later, or sign in with a code sent to your phone."
    )


class SignInThrottled(AppError):
    status = 429
    code = "rate_limited"
    message = _l(
        "Too many sign-in attempts for this national number. Wait a moment, or use a code sent to your phone."
    )


class PhoneNotVerified(Forbidden):
    code = "phone_not_verified"
    message = _l("Verify your phone number with the code we sent before signing in.")


class CodeInvalid(ValidationFailed):
    code = "code_invalid"
    message = _l("The code is wrong or no longer valid. Request a new code.")


class CodeExpired(ValidationFailed):
    code = "code_expired"
    message = _l("The code has expired. Request a new code.")


class RefreshRejected(Unauthorized):
    code = "invalid_refresh_token"
    message = _l("Your session has ended. Please sign in again.")
