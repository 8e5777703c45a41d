"""Every extension object, created here and configured only in `init_app` by the factory."""

from __future__ import annotations

from flask import request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from app.database import Base
from app.errors import ErrorEnvelopeSchema, http_error_response


class SanadApi(Api):
    """flask-smorest's Api with our envelope for every HTTP error (and Werkzeug's headers kept)."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def handle_http_exception(self, error):
        return http_error_response(error)


def client_ip() -> str:
    """The caller's address (behind a proxy, ProxyFix has already set it from X-Forwarded-For)."""
    return request.remote_addr or "unknown"


db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(compare_type=True, render_as_batch=True)
api = SanadApi()
babel = Babel()
limiter = Limiter(key_func=client_ip)
