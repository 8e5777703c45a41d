"""Configuration read only from environment variables; production refuses missing secrets.

Parsed here rather than with environs or pydantic-settings, on purpose: `load_config(env)` takes the
environment as a plain mapping (tests and `make faults` build apps from dicts without touching
`os.environ`; environs reads only `os.environ`), the few types we need (bool, int, `kid:secret` lists,
limit strings) are the helpers below, and every error names the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(RuntimeError):
    """The environment does not describe a runnable deployment."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _jwt_keys(raw: str) -> dict[str, str]:
    """Parse `kid1:secret1,kid2:secret2` (the first is used to sign unless JWT_ACTIVE_KID says otherwise)."""
    keys: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        kid, sep, secret = part.partition(":")
        if not sep or not kid or len(secret) < 32:
            raise ConfigError("JWT_KEYS entries must be `kid:secret` with a secret of at least 32 characters")
        keys[kid] = secret
    return keys


# Development-only values; production must set its own (checked in `load_config`).
_DEV_JWT_KEYS = "dev1:development-only-signing-key-not-for-production"
_DEV_SECRET = "development-only-secret-key-not-for-production"
_DEV_OTP_PEPPER = "development-only-otp-pepper"


@dataclass
class Settings:
    """Everything the app reads from its environment, with the defaults of a local run."""

    env: str = "development"
    database_url: str = ""
    db_pool_size: int = 10
    db_max_overflow: int = 20
    redis_url: str | None = None
    secret_key: str = _DEV_SECRET
    jwt_keys: dict[str, str] = field(default_factory=dict)
    jwt_active_kid: str = ""
    jwt_issuer: str = "sanad-booking"
    jwt_audience: str = "sanad-app"
    access_token_seconds: int = 900
    refresh_token_days: int = 30
    otp_pepper: str = _DEV_OTP_PEPPER
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    sms_sender: str = "console"
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    # Sign-in (app/accounts/services.py `login`): the pair (national id, address) locks after
    # LOGIN_MAX_FAILURES for LOGIN_LOCKOUT_MINUTES; the national id alone only slows down, from the
    # LOGIN_THROTTLE_FREE_ATTEMPTS-th attempt without a success, by BASE·2^n seconds up to MAX.
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    login_throttle_free_attempts: int = 5
    login_throttle_base_seconds: int = 1
    login_throttle_max_seconds: int = 60
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    argon2_parallelism: int = 4
    ratelimit_enabled: bool = True
    # Per identity (account, device, phone, national id): where abuse is stopped (README, limits).
    ratelimit_login: str = "10 per minute;50 per hour"  # per device (X-Device-Id)
    ratelimit_otp: str = "5 per 10 minutes;20 per day"
    ratelimit_search: str = "120 per minute"
    ratelimit_holds: str = "20 per minute;100 per day"
    # Per address: carrier-grade NAT puts thousands of citizens behind one address, so these only catch
    # floods far beyond any crowd (hundreds of citizens a minute from one address are normal).
    ratelimit_login_per_address: str = "3000 per minute"
    ratelimit_otp_per_address: str = "1000 per minute"
    ratelimit_search_per_address: str = "20000 per minute"
    ratelimit_holds_per_address: str = "5000 per minute"
    # A ticket's public page polls every few seconds from every phone in a hall (one address over Wi-Fi).
    ratelimit_public_reads_per_address: str = "6000 per minute"
    ratelimit_default: str = "20000 per minute"
    trusted_proxies: int = 0
    hold_seconds: int = 300
    booking_cutoff_minutes: int = 60
    resident_horizon_days: int = 30
    expatriate_horizon_days: int = 90
    cancel_release_delay_minutes: int = 30
    # Release day: how long a seat offered from a waitlist is held, and a draw's default hold.
    waitlist_offer_minutes: int = 120
    draw_confirm_hours: int = 24
    # Sold-out gate (booking/seatgate.py): how long a slot seen full is refused from Redis alone (0: off).
    seat_gate_ms: int = 5000
    max_active_bookings: int = 3
    max_active_per_group: int = 1
    max_holds: int = 1
    no_show_grace_minutes: int = 15
    no_show_window_days: int = 90
    no_show_limit: int = 2
    no_show_suspension_days: int = 30
    cancel_window_days: int = 7
    cancel_limit: int = 3
    cancel_cooldown_days: int = 7
    device_account_limit: int = 3
    device_window_days: int = 30
    renewal_window_days: int = 180
    check_in_before_minutes: int = 30
    check_in_after_minutes: int = 15
    turn_near_ahead: int = 3
    queue_vulnerable_bonus_minutes: int = 15
    queue_appointment_early_minutes: int = 10
    queue_starvation_minutes: int = 45
    queue_max_calls: int = 3
    queue_call_grace_minutes: int = 5
    queue_service_time_samples: int = 20
    queue_keepalive_seconds: int = 15
    queue_stream_max_seconds: int = 900
    # Live display streams (queue/streams.py): anonymous screens per address and in total (across workers),
    # and all screens per worker process. A hall has a few screens; a flood has thousands.
    queue_streams_per_address: int = 20
    queue_streams_anonymous_max: int = 1000
    queue_streams_per_worker: int = 1000
    urgent_max_approved: int = 2
    urgent_window_days: int = 365
    # Seconds an availability answer is reused from Redis (booking/availability.py says why that is safe;
    # 0: off, the default under APP_ENV=test so tests read their own writes).
    availability_cache_seconds: int = 2
    idempotency_ttl_hours: int = 24
    # How long a claimed Idempotency-Key waits for its request before a replay may take it over
    # (app/idempotency.py): longer than the slowest request that still finishes (a replay taking over a
    # request still running would run it twice), short enough that the app's retries succeed.
    idempotency_lease_seconds: int = 30
    # `Retry-After` of the 503 answered while PostgreSQL (or Redis, where it is needed) is unreachable.
    unavailable_retry_after_seconds: int = 2
    # Seconds to wait for a new PostgreSQL connection before answering 503 (a lost host must not hang
    # workers), and for a free connection of the pool when every one is busy (a burst queues this long).
    db_connect_timeout: int = 3
    db_pool_timeout: int = 10
    app_check_required: bool = False
    app_check_project_number: str | None = None
    fcm_credentials: str | None = None
    # Push outbox (notifications/).
    push_batch_size: int = 100
    push_max_attempts: int = 6
    push_backoff_base_seconds: int = 30
    push_backoff_cap_seconds: int = 3600
    push_claim_lease_seconds: int = 300
    push_max_age_hours: int = 12
    # Scheduler (app/scheduler.py): seconds between runs of each job, and the misfire grace.
    scheduler_enabled: bool = False
    scheduler_misfire_grace_seconds: int = 60
    job_generate_slots_seconds: int = 3600
    job_expire_holds_seconds: int = 30
    job_mark_no_shows_seconds: int = 300
    job_send_reminders_seconds: int = 300
    job_dispatch_outbox_seconds: int = 10
    job_close_day_seconds: int = 900
    job_expire_unanswered_calls_seconds: int = 60
    job_prune_idempotency_keys_seconds: int = 3600
    job_run_due_draws_seconds: int = 30
    job_end_past_waits_seconds: int = 3600
    job_prune_login_lockouts_seconds: int = 3600
    log_json: bool = True
    log_level: str = "INFO"
    # `/metrics` wants `Authorization: Bearer <METRICS_TOKEN>` when set; unset, it is open in development
    # and test and off (404) in production.
    metrics_token: str | None = None
    # Swagger UI (`/docs`) and the OpenAPI document; on by default except in production.
    api_docs_enabled: bool = True

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def as_flask(self) -> dict[str, object]:
        """Flask-style UPPER_CASE keys for `app.config`."""
        out = {k.upper(): v for k, v in self.__dict__.items()}
        out["SQLALCHEMY_DATABASE_URI"] = self.database_url
        out["SECRET_KEY"] = self.secret_key
        return out


def default_sqlite_url(instance_path: str) -> str:
    """The embedded database of a local run: a file in the instance folder."""
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / 'sanad.db'}"


def normalise_database_url(url: str) -> str:
    """Send `postgres://` and `postgresql://` URLs to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_config(env: dict[str, str] | None = None, *, instance_path: str = "instance") -> Settings:
    """Build settings from the environment; refuse development defaults in production."""
    env = dict(os.environ if env is None else env)
    s = Settings()
    s.env = env.get("APP_ENV", "development")
    if s.env not in {"development", "test", "production"}:
        raise ConfigError("APP_ENV must be development, test or production")
    if s.env == "test":
        s.availability_cache_seconds = 0
    s.database_url = normalise_database_url(env.get("DATABASE_URL") or default_sqlite_url(instance_path))
    s.redis_url = env.get("REDIS_URL") or None
    s.secret_key = env.get("SECRET_KEY") or _DEV_SECRET
    s.jwt_keys = _jwt_keys(env.get("JWT_KEYS") or _DEV_JWT_KEYS)
    s.jwt_active_kid = env.get("JWT_ACTIVE_KID") or next(iter(s.jwt_keys))
    if s.jwt_active_kid not in s.jwt_keys:
        raise ConfigError("JWT_ACTIVE_KID names a key that JWT_KEYS does not hold")
    s.otp_pepper = env.get("OTP_PEPPER") or _DEV_OTP_PEPPER
    s.sms_sender = env.get("SMS_SENDER", "console")
    s.sms_gateway_url = env.get("SMS_GATEWAY_URL") or None
    s.sms_gateway_token = env.get("SMS_GATEWAY_TOKEN") or None
    s.app_check_required = _bool(env.get("APP_CHECK_REQUIRED"))
    s.app_check_project_number = env.get("APP_CHECK_PROJECT_NUMBER") or None
    s.fcm_credentials = env.get("FCM_CREDENTIALS") or None
    s.ratelimit_enabled = _bool(env.get("RATELIMIT_ENABLED"), True)
    s.scheduler_enabled = _bool(env.get("SCHEDULER_ENABLED"), False)
    s.log_json = _bool(env.get("LOG_JSON"), True)
    s.log_level = env.get("LOG_LEVEL", "INFO")
    s.metrics_token = env.get("METRICS_TOKEN") or None
    s.api_docs_enabled = _bool(env.get("API_DOCS_ENABLED"), s.env != "production")
    s.jwt_issuer = env.get("JWT_ISSUER", s.jwt_issuer)
    s.jwt_audience = env.get("JWT_AUDIENCE", s.jwt_audience)
    for name in (
        "ratelimit_login",
        "ratelimit_otp",
        "ratelimit_search",
        "ratelimit_holds",
        "ratelimit_login_per_address",
        "ratelimit_otp_per_address",
        "ratelimit_search_per_address",
        "ratelimit_holds_per_address",
        "ratelimit_public_reads_per_address",
        "ratelimit_default",
    ):
        setattr(s, name, env.get(name.upper(), getattr(s, name)))
    for name, value in list(s.__dict__.items()):
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(s, name, _int(env, name.upper(), value))

    if s.is_production:
        missing = [
            name
            for name, dev in (("SECRET_KEY", _DEV_SECRET), ("OTP_PEPPER", _DEV_OTP_PEPPER))
            if getattr(s, name.lower()) == dev
        ]
        if not env.get("JWT_KEYS"):
            missing.append("JWT_KEYS")
        if not env.get("DATABASE_URL"):
            missing.append("DATABASE_URL")
        if not s.redis_url:
            missing.append("REDIS_URL")
        if missing:
            raise ConfigError("production needs " + ", ".join(missing))
        if s.sms_sender == "console":
            raise ConfigError("production cannot log one-time codes: set SMS_SENDER=http")
    if s.sms_sender == "http" and not s.sms_gateway_url:
        raise ConfigError("SMS_SENDER=http needs SMS_GATEWAY_URL")
    return s
