"""The one Redis client of the process: real Redis from REDIS_URL, else an embedded stand-in."""

from __future__ import annotations

import threading

import fakeredis
import redis
from flask import current_app

from app.config import ConfigError, Settings

_lock = threading.Lock()
_embedded_server: fakeredis.FakeServer | None = None


def embedded_server() -> fakeredis.FakeServer:
    """The process-wide in-memory Redis server, so every part of the process sees the same data."""
    global _embedded_server
    with _lock:
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer()
        return _embedded_server


def create_redis(settings: Settings) -> redis.Redis:
    """A client for REDIS_URL, or for the embedded server (never in production)."""
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=30,
        )
    if settings.is_production:
        raise ConfigError("production needs REDIS_URL; the embedded Redis is for local runs only")
    return fakeredis.FakeRedis(server=embedded_server(), decode_responses=True)


def get_redis() -> redis.Redis:
    """The app's Redis client."""
    return current_app.extensions["redis"]
