"""Configuration comes from the environment; production refuses development defaults."""

import pytest

from app.config import ConfigError, load_config
from app.redis_client import create_redis

PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "JWT_KEYS": "k1:" + "j" * 40,
    "OTP_PEPPER": "p" * 40,
    "DATABASE_URL": "postgresql://db/sanad",
    "REDIS_URL": "redis://cache:6379/0",
    "SMS_SENDER": "http",
    "SMS_GATEWAY_URL": "https://sms.example/send",
}


def test_complete_production_environment_loads():
    settings = load_config(PRODUCTION)
    assert settings.is_production
    assert settings.database_url == "postgresql+psycopg://db/sanad"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_KEYS", "OTP_PEPPER", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_missing_secrets_and_stores(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_config(env)


def test_production_refuses_console_sms():
    with pytest.raises(ConfigError, match="SMS_SENDER"):
        load_config({**PRODUCTION, "SMS_SENDER": "console"})


def test_production_refuses_the_embedded_redis():
    settings = load_config({**PRODUCTION})
    settings.redis_url = None
    with pytest.raises(ConfigError, match="REDIS_URL"):
        create_redis(settings)


def test_short_jwt_secret_and_bad_numbers_are_refused():
    with pytest.raises(ConfigError):
        load_config({"JWT_KEYS": "k1:short"})
    with pytest.raises(ConfigError, match="HOLD_SECONDS"):
        load_config({"HOLD_SECONDS": "five"})


def test_business_numbers_come_from_the_environment():
    settings = load_config({"HOLD_SECONDS": "120", "MAX_ACTIVE_BOOKINGS": "2", "APP_CHECK_REQUIRED": "true"})
    assert (settings.hold_seconds, settings.max_active_bookings, settings.app_check_required) == (
        120,
        2,
        True,
    )
