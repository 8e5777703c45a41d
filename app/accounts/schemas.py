"""Request and response bodies of registration, sign-in and the profile."""

import marshmallow as ma
from marshmallow import validate

from app.schemas import N_, BaseSchema, Integer

LANGUAGES = ("ar", "en")
NATIONAL_ID = validate.Regexp(r"^\d{10}$", error=N_("A national number has 10 digits."))


class RegisterSchema(BaseSchema):
    national_id = ma.fields.String(required=True, validate=NATIONAL_ID)
    date_of_birth = ma.fields.Date(required=True)
    full_name = ma.fields.String(required=True, validate=validate.Length(min=2, max=200))
    phone = ma.fields.String(required=True, validate=validate.Length(min=6, max=20))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200))
    language = ma.fields.String(load_default="ar", validate=validate.OneOf(LANGUAGES))
    residence_country = ma.fields.String(
        load_default="JO",
        validate=validate.Regexp(r"^[A-Za-z]{2}$", error=N_("Use a two-letter country code.")),
    )


class RegisteredSchema(BaseSchema):
    national_id = ma.fields.String()
    phone = ma.fields.String(metadata={"description": "Normalised to E.164"})
    status = ma.fields.String(metadata={"description": "`pending_verification` until the code is entered"})


class VerifyPhoneSchema(BaseSchema):
    national_id = ma.fields.String(required=True, validate=NATIONAL_ID)
    code = ma.fields.String(required=True, validate=validate.Regexp(r"^\d{6}$"))


class ResendCodeSchema(BaseSchema):
    national_id = ma.fields.String(required=True, validate=NATIONAL_ID)


class LoginSchema(BaseSchema):
    national_id = ma.fields.String(required=True, validate=NATIONAL_ID)
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200))
    code = ma.fields.String(
        load_only=True,
        validate=validate.Regexp(r"^\d{6}$"),
        metadata={"description": "A code from `POST /auth/login-code`: lifts the throttle and the lock"},
    )


class RefreshSchema(BaseSchema):
    refresh_token = ma.fields.String(required=True, validate=validate.Length(min=10, max=200))


class TokenPairSchema(BaseSchema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    expires_in = Integer(required=True, metadata={"description": "Access token lifetime, seconds"})
    token_type = ma.fields.String()


class AccountSchema(BaseSchema):
    national_id = ma.fields.String()
    full_name = ma.fields.String()
    phone = ma.fields.String()
    language = ma.fields.String()
    residence_country = ma.fields.String()
    role = ma.fields.String()
    centre_id = ma.fields.String(allow_none=True)
    phone_verified = ma.fields.Boolean(attribute="is_verified")
    expatriate = ma.fields.Boolean(attribute="is_expatriate")


class ProfileUpdateSchema(BaseSchema):
    language = ma.fields.String(validate=validate.OneOf(LANGUAGES))

    @ma.validates_schema
    def _something_to_change(self, data, **kwargs):
        if not data:
            # An empty PATCH is a client mistake, not a success: name what can be changed.
            raise ma.ValidationError({"language": [N_("Give the field to change.")]})


class DependentsQuerySchema(BaseSchema):
    on = ma.fields.Date(
        metadata={"description": "The visit's date: a child who is 18 by then is no longer a dependent"}
    )


class DependentSchema(BaseSchema):
    national_id = ma.fields.String()
    full_name = ma.fields.Method("_full_name")
    full_name_ar = ma.fields.String()
    full_name_en = ma.fields.String()
    date_of_birth = ma.fields.Date()
    passport_expiry = ma.fields.Date(allow_none=True)

    def _full_name(self, record) -> str:
        from flask_babel import get_locale

        locale = get_locale()
        return record.full_name_ar if locale is not None and locale.language == "ar" else record.full_name_en
