"""Every extension object, created here and configured only in `init_app` by the factory."""

from __future__ import annotations

import logging

from flask import request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_smorest import Api, Blueprint
from flask_sqlalchemy import SQLAlchemy
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from app.database import Base
from app.errors import ErrorEnvelopeSchema, http_error_response
from app.schemas import DB_INT_MAX

log = logging.getLogger(__name__)


class SanadSQLAlchemy(SQLAlchemy):
    """Flask-SQLAlchemy whose end-of-request cleanup survives a dead connection.

    Removing the session rolls back on its connection; when PostgreSQL has gone away that raises from
    Flask's teardown, outside every error handler, and the server answers its own HTML 500 instead of
    our 503. The connection is already unusable: drop it from the pool and forget the session.
    """

    def _teardown_session(self, exc: BaseException | None) -> None:
        try:
            self.session.remove()
        except Exception:
            log.warning("session cleanup failed on a lost connection", exc_info=True)
            try:
                self.session.invalidate()
            except Exception:
                log.debug("invalidating the lost connection failed", exc_info=True)
            self.session.registry.clear()


class SanadApi(Api):
    """flask-smorest's Api with our envelope for every HTTP error (and Werkzeug's headers kept)."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def handle_http_exception(self, error):
        return http_error_response(error)

    def _register_pagination_header(self) -> None:
        # The header's value is a JSON string; documenting it as an object misleads clients and validators.
        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination metadata as a JSON object in a string: total, total_pages, "
                "first_page, last_page, page, previous_page, next_page.",
                "schema": {"type": "string"},
            },
            lazy=True,
        )


class StrictParser(FlaskParser):
    """Query strings obey the schema's `unknown` (RAISE in QuerySchema), not webargs' EXCLUDE."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }


# flask-smorest's documented customisation point, set once for every blueprint of the app.
Blueprint.ARGUMENTS_PARSER = StrictParser()


class IdConverter(IntegerConverter):
    """`<int:…>` path ids bounded to the database's integer range (an overflow is a 404, not a 500)."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - Werkzeug's parameter name
        kwargs.setdefault("max", DB_INT_MAX)
        super().__init__(map, *args, **kwargs)


def id_converter_schema(converter: IdConverter) -> dict:
    """How flask-smorest documents a bounded id."""
    return {"type": "integer", "minimum": 0, "maximum": converter.max}


def client_ip() -> str:
    """The caller's address (behind a proxy, ProxyFix has already set it from X-Forwarded-For)."""
    return request.remote_addr or "unknown"


db = SanadSQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(compare_type=True, render_as_batch=True)
api = SanadApi()
babel = Babel()
limiter = Limiter(key_func=client_ip)
