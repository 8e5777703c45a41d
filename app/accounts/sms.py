"""Sending one-time codes: `console` logs them for local runs, `http` posts to an SMS gateway."""

from __future__ import annotations

import logging
from typing import Protocol

import requests
from flask import current_app

log = logging.getLogger("sanad.sms")


class SmsSender(Protocol):
    """Delivers a text message to a phone number in E.164."""

    def send(self, phone: str, text: str) -> None: ...


class ConsoleSmsSender:
    """Logs the message (development only; production refuses this sender)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))
        log.info("sms to %s: %s", phone, text)


class HttpSmsSender:
    """Posts `{"to", "text"}` as JSON to the configured gateway with a bearer token."""

    def __init__(self, url: str, token: str | None, timeout: float = 5.0) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, phone: str, text: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = requests.post(
            self.url, json={"to": phone, "text": text}, headers=headers, timeout=self.timeout
        )
        response.raise_for_status()


def build_sender(kind: str, url: str | None, token: str | None) -> SmsSender:
    """The sender named by SMS_SENDER."""
    if kind == "http":
        assert url, "SMS_GATEWAY_URL is checked by the configuration"
        return HttpSmsSender(url, token)
    return ConsoleSmsSender()


def get_sms_sender() -> SmsSender:
    """The app's sender."""
    return current_app.extensions["sms_sender"]
