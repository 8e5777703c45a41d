"""Request and response bodies of registration, sign-in and the profile."""

import marshmallow as ma
from marshmallow import validate

from app.schemas import BaseSchema

LANGUAGES = ("ar", "en")
NATIONAL_ID = validate.Regexp(r"^\d{10}$", error="A national number has 10 digits.")


class RegisterSchema(BaseSchema):
    national_id = ma.fields.String(required=True, validate=NATIONAL_ID)
    date_of_birth = ma.fields.Date(required=True)
    full_name = ma.fields.String(required=True, validate=validate.Length(min=2, max=200))
    phone = ma.fields.String(required=True, validate=validate.Length(min=6, max=20))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200))
    language = ma.fields.String(load_default="ar", validate=validate.OneOf(LANGUAGES))
    residence_country = ma.fields.String(
        load_default="JO", validate=validate.Regexp(r"^[A-Za-z]{2}$", error="Use a two-letter country code.")
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


class RefreshSchema(BaseSchema):
    refresh_token = ma.fields.String(required=True, validate=validate.Length(min=10, max=200))


class TokenPairSchema(BaseSchema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Access token lifetime, seconds"})
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
