"""The application factory: a list of named register steps (cookiecutter-flask style)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from babel import Locale
from flask import Flask, redirect, request, send_from_directory
from sqlalchemy.orm import configure_mappers
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Settings, load_config

# Domain blueprints, registered in this order; each module exposes `bp` (and optionally more).
BLUEPRINTS = (
    "app.ops:bp",
    "app.accounts.routes:bp",
    "app.accounts.routes:me_bp",
    "app.catalogue.routes:bp",
    "app.catalogue.routes:admin_bp",
    "booking.routes:bp",
    "booking.release_routes:bp",
    "notifications.routes:bp",
    "ticketing.routes:bp",
    "ticketing.routes:pages_bp",
    "ticketing.pages:bp",
)
# Model modules, imported so that every table is in the metadata (migrations, tests).
MODELS = (
    "app.registry.models",
    "app.catalogue.models",
    "app.accounts.models",
    "app.idempotency",
    "app.audit",
    "booking.models",
    "booking.release_models",
    "notifications.models",
    "ticketing.models",
)
# Domain start-up hooks `init_app(app)` (signal receivers, scheduler jobs, pub/sub).
DOMAIN_INIT: tuple[str, ...] = ("booking:init_app",)
# Domain WSGI middleware `wrap(app, wsgi_app) -> wsgi_app`, innermost first, all inside ProxyFix (so each sees
# the client's address): fast paths that answer before Flask builds a request.
MIDDLEWARE: tuple[str, ...] = ("ticketing.gate:gate_streams",)
TRANSLATIONS = Path(__file__).parent / "translations"


def create_app(overrides: dict[str, str] | None = None) -> Flask:
    """Build the app from the environment (plus `overrides`, used by tests)."""
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or str(Path.cwd() / "instance"))
    env = {**os.environ, **(overrides or {})}
    settings = load_config(env, instance_path=app.instance_path)
    configure_app(app, settings)
    register_logging(app, settings)
    register_extensions(app, settings)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_hooks(app)
    register_scheduler(app)
    register_middleware(app, settings)
    return app


def configure_app(app: Flask, settings: Settings) -> None:
    """Settings into `app.config`, plus the libraries' own keys."""
    app.config.update(settings.as_flask())
    app.config["SETTINGS"] = settings
    app.json.ensure_ascii = False  # Arabic leaves as UTF-8 text, not \u escapes
    app.config["TESTING"] = settings.env == "test"
    app.config.update(
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=256 * 1024,
        BABEL_DEFAULT_LOCALE="ar",
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
        API_TITLE="Sanad Booking API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        # None: flask-smorest serves neither the document nor Swagger UI (the spec is still built).
        OPENAPI_URL_PREFIX="/" if settings.api_docs_enabled else None,
        OPENAPI_JSON_PATH="api/v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Bookings, urgent passports and service-centre queues. Errors share one "
                'envelope: `{"error": {"code", "message", "details"}}`; `Accept-Language: ar|en`.'
            }
        },
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        RATELIMIT_STRATEGY="sliding-window-counter",
        # Strategies use different key types: a new strategy needs a new prefix, or
        # it reads the old one's keys as its own and fails.
        RATELIMIT_KEY_PREFIX="sanad-swc",
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_HEADERS_ENABLED=True,
        # Flask-Limiter would put its window's reset in `Retry-After` on every answer, over ours (a 503's
        # 2 s, a sign-in delay's 1 s); its own 429s get `Retry-After` from app/errors.py.
        RATELIMIT_HEADER_RETRY_AFTER="X-RateLimit-Retry-After",
        RATELIMIT_DEFAULT=settings.ratelimit_default,
    )


def _engine_options(settings: Settings) -> dict:
    if settings.database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # Per process: keep workers × (pool + overflow) under PostgreSQL's max_connections.
    # No pre-ping (a round trip per checkout): app/pool.py replaces, at checkout, the connections a restart
    # closed, so the pool heals by itself when PostgreSQL is back; the connect timeout turns an unreachable
    # host into a quick 503 instead of a hung worker.
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_recycle": 1800,
        "pool_timeout": settings.db_pool_timeout,
        "connect_args": {"connect_timeout": settings.db_connect_timeout},
    }


def register_logging(app: Flask, settings: Settings) -> None:
    """JSON logs with request ids."""
    from app.logs import configure_logging, register_request_ids

    configure_logging(settings.log_level, settings.log_json)
    register_request_ids(app)


def register_extensions(app: Flask, settings: Settings) -> None:
    """Database, migrations, Babel, Redis, rate limiter, OpenAPI, SMS sender."""
    from app.accounts.sms import build_sender
    from app.dialect import register_statement_connections
    from app.extensions import IdConverter, api, babel, db, id_converter_schema, limiter, migrate
    from app.http_headers import register_retry_after_only_on_refusals, register_security_headers
    from app.pool import check_connections_at_checkout
    from app.redis_client import create_redis

    db.init_app(app)
    with app.app_context():
        check_connections_at_checkout(db.engine)
    register_statement_connections(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"))
    babel.init_app(app, locale_selector=select_locale)
    redis_client = create_redis(settings)
    app.extensions["redis"] = redis_client
    # The limiter shares the app's Redis pool (real or embedded), and its short timeouts: a Redis outage
    # fails fast into Flask-Limiter's in-memory fallback. (Passing the pool each time also matters because
    # Flask-Limiter merges storage options across init_app calls.)
    app.config["RATELIMIT_STORAGE_URI"] = "redis://"
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": redis_client.connection_pool}
    register_retry_after_only_on_refusals(app)  # before the limiter, so it runs after it
    limiter.init_app(app)
    app.url_map.converters["int"] = IdConverter
    from app.contract import ContractPlugin

    api.init_app(app, spec_kwargs={"extra_plugins": [ContractPlugin()]})
    api.register_converter(IdConverter, id_converter_schema)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    register_security_headers(app, settings)
    app.extensions["sms_sender"] = build_sender(
        settings.sms_sender, settings.sms_gateway_url, settings.sms_gateway_token
    )
    for module_name in MODELS:
        importlib.import_module(module_name)
    # Relationships resolved now, once per process, instead of inside some worker's first query (SQLAlchemy
    # configures mappers lazily, on first use: a few hundred milliseconds of CPU in a request).
    configure_mappers()
    for dotted in DOMAIN_INIT:
        module_name, _, func = dotted.partition(":")
        getattr(importlib.import_module(module_name), func)(app)


# The two languages as Babel locales, parsed once (Flask-Babel parses whatever the selector returns, on
# every request, unless it is a Locale already); and the answer for each Accept-Language header seen.
LOCALES = {"ar": Locale.parse("ar"), "en": Locale.parse("en")}
_LOCALE_BY_HEADER: dict[str, str | None] = {}
_LOCALE_BY_HEADER_MAX = 1024


def select_locale() -> Locale:
    """Arabic or English: the Accept-Language header, else the account's language, else Arabic."""
    header = request.headers.get("Accept-Language")
    if header:
        if header in _LOCALE_BY_HEADER:
            match = _LOCALE_BY_HEADER[header]
        else:
            match = request.accept_languages.best_match(["ar", "en"])
            if len(_LOCALE_BY_HEADER) >= _LOCALE_BY_HEADER_MAX:
                _LOCALE_BY_HEADER.clear()
            _LOCALE_BY_HEADER[header] = match
        if match:
            return LOCALES[match]
    from app.security import current_principal

    try:
        principal = current_principal()
    except Exception:  # an invalid token still gets a localised 401
        principal = None
    return LOCALES.get(principal.language if principal else "ar", LOCALES["ar"])


def register_blueprints(app: Flask) -> None:
    """Every domain's blueprint; API blueprints go through flask-smorest so they are documented."""
    from flask_smorest import Blueprint as SmorestBlueprint

    from app.extensions import api

    for dotted in BLUEPRINTS:
        module_name, _, attr = dotted.partition(":")
        blueprint = getattr(importlib.import_module(module_name), attr)
        if isinstance(blueprint, SmorestBlueprint):
            api.register_blueprint(blueprint)
        else:
            app.register_blueprint(blueprint)

    if not app.config["API_DOCS_ENABLED"]:
        return
    import flask_swagger_ui

    assets = Path(flask_swagger_ui.__file__).parent / "dist"

    @app.get("/docs/assets/<path:filename>")
    def docs_assets(filename: str):
        """Swagger UI's files, served locally (no CDN needed inside a government network)."""
        return send_from_directory(assets, filename, max_age=86400)

    @app.get("/")
    @app.get("/docs/")
    def to_docs():
        """The browsable contract is the front page of the API."""
        return redirect("/docs")


def register_errorhandlers(app: Flask) -> None:
    """The error envelope for everything, registered after flask-smorest's own handler."""
    from app.errors import register_error_handlers

    register_error_handlers(app)


def register_commands(app: Flask) -> None:
    """`flask demo-data`, `flask kiosk-token`, and the domains' commands."""
    from app.cli import register_cli

    register_cli(app)


def register_hooks(app: Flask) -> None:
    """Request-body checks before any view parses it, and metrics per request."""
    from app.json_depth import register_json_depth_check
    from app.ops import register_metrics

    register_json_depth_check(app)
    register_metrics(app)


def register_scheduler(app: Flask) -> None:
    """`flask scheduler`, and the in-process scheduler under `flask run` when SCHEDULER_ENABLED (make run)."""
    from app.scheduler import init_app as init_scheduler

    init_scheduler(app)


def register_middleware(app: Flask, settings: Settings) -> None:
    """The domains' WSGI middleware around Flask, then ProxyFix outermost (behind a trusted proxy)."""
    for dotted in MIDDLEWARE:
        module_name, _, func = dotted.partition(":")
        app.wsgi_app = getattr(importlib.import_module(module_name), func)(app, app.wsgi_app)
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=1, x_host=1)
