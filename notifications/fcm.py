"""Push notifications through Firebase Cloud Messaging (HTTP v1) with firebase-admin.

This is the only module of the product that imports ``firebase_admin.messaging``.  Callers hand over
``PushMessage`` values and get one ``SendResult`` per message, in order, telling them what to do next:
keep the token (SENT), try again later (RETRY), delete the device token (DROP_TOKEN) or give up
(FAILED).  No exception from FCM escapes ``send_batch``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import firebase_admin
import google.auth.exceptions
import requests
from firebase_admin import credentials, exceptions, messaging

logger = logging.getLogger(__name__)

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# FCM-specific exception classes -> the FCM v1 errorCode they stand for (when the body lacks one).
_FCM_CODES: tuple[tuple[type[exceptions.FirebaseError], str], ...] = (
    (messaging.UnregisteredError, "UNREGISTERED"),
    (messaging.SenderIdMismatchError, "SENDER_ID_MISMATCH"),
    (messaging.QuotaExceededError, "QUOTA_EXCEEDED"),
    (messaging.ThirdPartyAuthError, "THIRD_PARTY_AUTH_ERROR"),
)
_RETRYABLE = (
    messaging.QuotaExceededError,
    exceptions.ResourceExhaustedError,
    exceptions.UnavailableError,  # 503, and connection failures
    exceptions.InternalError,  # 500
    exceptions.DeadlineExceededError,  # timeouts
)
_app_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PushMessage:
    token: str
    title: str
    body: str
    data: Mapping[str, str]  # all values strings (FCM requires it)
    collapse_key: str | None = None


class SendOutcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    DROP_TOKEN = "drop_token"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    message_id: str | None = None
    # FCM v1 errorCode when FCM gave one (UNREGISTERED, QUOTA_EXCEEDED, INVALID_ARGUMENT, UNAVAILABLE,
    # INTERNAL, ...), else the platform code (DEADLINE_EXCEEDED, UNAUTHENTICATED, ...); "INVALID_MESSAGE"
    # for messages rejected locally and "AUTH" when the OAuth2 token could not be obtained.
    error_code: str | None = None
    detail: str | None = None


class FcmSender:
    """Sends ``PushMessage`` batches with ``messaging.send_each``.

    The firebase App named ``app_name`` is created on first use with the service-account file, or
    reused if it already exists (then its credentials/options win).  ``close()`` deletes the App only
    if this sender created it.
    """

    MAX_BATCH = 500  # send_each limit

    def __init__(
        self,
        *,
        credentials_path: str,
        project_id: str | None = None,
        app_name: str = "sanad-fcm",
        http_timeout: float = 10.0,
        fcm_url: str | None = None,
    ) -> None:
        self._app, self._owns_app = _get_or_create_app(credentials_path, project_id, app_name, http_timeout)
        if fcm_url is not None:
            _create_messaging_service(self._app, fcm_url)
        self._closed = False
        self._token_lock = threading.Lock()

    @property
    def app(self) -> firebase_admin.App:
        return self._app

    def send_batch(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        if self._closed:
            raise RuntimeError("FcmSender is closed")
        results: list[SendResult | None] = [None] * len(messages)
        pending: list[tuple[int, messaging.Message]] = []
        for index, push in enumerate(messages):
            problem = _validate(push)
            if problem is not None:
                results[index] = SendResult(SendOutcome.FAILED, error_code="INVALID_MESSAGE", detail=problem)
            else:
                pending.append((index, _to_fcm_message(push)))

        for start in range(0, len(pending), self.MAX_BATCH):
            chunk = pending[start : start + self.MAX_BATCH]
            for (index, _), result in zip(chunk, self._send_chunk([m for _, m in chunk]), strict=True):
                results[index] = result

        final = [r for r in results if r is not None]
        assert len(final) == len(messages)
        counts: dict[str, int] = {}
        for result in final:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        logger.info("fcm batch of %d: %s", len(messages), counts)
        return final

    def _ensure_access_token(self) -> None:
        """Refreshes the OAuth2 token once, before send_each fans out.

        send_each posts every message from its own thread and google-auth's synchronous refresh has
        no lock, so with an expired token each thread would fetch its own (up to 500 token requests
        for the first batch, and again every hour).  The App's credential object is the one the
        messaging service authorises with, so refreshing it here serves all threads.
        """
        credential = self._app.credential.get_credential()
        if credential.valid:
            return
        with self._token_lock:
            if not credential.valid:
                self._app.credential.get_access_token()

    def _send_chunk(self, chunk: list[messaging.Message]) -> list[SendResult]:
        try:
            self._ensure_access_token()
        except google.auth.exceptions.GoogleAuthError as exc:
            return [_classify_auth_failure(exc)] * len(chunk)
        try:
            batch = messaging.send_each(chunk, app=self._app)
        except ValueError as exc:
            # The SDK encodes every message before sending any, so nothing went out: isolate the
            # message(s) it refuses instead of failing the whole chunk.
            if len(chunk) == 1:
                return [SendResult(SendOutcome.FAILED, error_code="INVALID_MESSAGE", detail=_short(exc))]
            return [self._send_chunk([message])[0] for message in chunk]
        except exceptions.FirebaseError as exc:
            # Raised for the whole chunk when something other than an HTTP error escaped a worker,
            # e.g. the OAuth2 token refresh failed.  Nothing (or almost nothing) was delivered.
            result = _classify_chunk_failure(exc)
            return [result] * len(chunk)
        return [_classify_response(response) for response in batch.responses]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_app:
            with contextlib.suppress(ValueError):  # already deleted elsewhere
                firebase_admin.delete_app(self._app)

    def __enter__(self) -> FcmSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------


def _get_or_create_app(
    credentials_path: str, project_id: str | None, app_name: str, http_timeout: float
) -> tuple[firebase_admin.App, bool]:
    with _app_lock:
        try:
            return firebase_admin.get_app(app_name), False
        except ValueError:
            pass
        options: dict[str, Any] = {"httpTimeout": http_timeout}
        if project_id:
            options["projectId"] = project_id
        cert = credentials.Certificate(credentials_path)
        return firebase_admin.initialize_app(cert, options, name=app_name), True


def _create_messaging_service(app: firebase_admin.App, fcm_url: str) -> None:
    """Creates the App's messaging service against ``fcm_url`` (a format string, ``{0}`` = project).

    ``_MessagingService.FCM_URL`` and ``_get_messaging_service`` are private to firebase-admin; they
    are used only to aim the SDK at a local stand-in, which is why firebase-admin's version is pinned
    (7.7.0 in requirements/base.in) - re-check both names when bumping it.  The service reads FCM_URL once,
    when it is created, so the class attribute is restored straight away: other Apps keep Google's URL.
    A service that already exists (reused App) is left as it is.
    """
    service_class = messaging._MessagingService
    with _app_lock:
        original = service_class.FCM_URL
        service_class.FCM_URL = fcm_url
        try:
            messaging._get_messaging_service(app)
        finally:
            service_class.FCM_URL = original


def _validate(push: PushMessage) -> str | None:
    if not isinstance(push.token, str) or not push.token:
        return "token must be a non-empty string"
    if not isinstance(push.title, str) or not isinstance(push.body, str):
        return "title and body must be strings"
    if not isinstance(push.data, Mapping):
        return "data must be a mapping"
    bad = sorted(repr(k) for k, v in push.data.items() if not isinstance(k, str) or not isinstance(v, str))
    if bad:
        return f"data keys and values must be strings: {', '.join(bad)}"
    if push.collapse_key is not None and not isinstance(push.collapse_key, str):
        return "collapse_key must be a string"
    return None


def _to_fcm_message(push: PushMessage) -> messaging.Message:
    message = messaging.Message(
        notification=messaging.Notification(title=push.title, body=push.body),
        data=dict(push.data) or None,  # the encoder wants a real dict
        android=messaging.AndroidConfig(priority="high", collapse_key=push.collapse_key),
        apns=messaging.APNSConfig(
            headers={"apns-priority": "10", "apns-push-type": "alert"},
            payload=messaging.APNSPayload(aps=messaging.Aps(sound="default")),
        ),
    )
    # FCM v1 addresses a device by registration token ("message.token").  firebase-admin 7.7.0
    # deprecates Message(token=...) in favour of `fid` and warns on every construction; the encoder
    # still reads the public `token` attribute, so set it after construction.  That avoids the warning
    # without warnings.catch_warnings(), which mutates process-wide filters and is not thread-safe.
    message.token = push.token
    return message


def _fcm_error_code(exc: exceptions.FirebaseError) -> str | None:
    response = exc.http_response
    if response is not None:
        try:
            details = response.json().get("error", {}).get("details", [])
        except (ValueError, AttributeError):
            details = []
        for detail in details if isinstance(details, list) else []:
            if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE:
                code = detail.get("errorCode")
                if code:
                    return str(code)
    for exc_type, code in _FCM_CODES:
        if isinstance(exc, exc_type):
            return code
    return exc.code


def _classify_exception(exc: exceptions.FirebaseError) -> SendOutcome:
    if isinstance(exc, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return SendOutcome.DROP_TOKEN
    if isinstance(exc, _RETRYABLE):
        return SendOutcome.RETRY
    response = exc.http_response
    if response is not None and response.status_code >= 500:  # 502, 504, ... from a proxy
        return SendOutcome.RETRY
    if response is None and isinstance(exc.cause, requests.RequestException):  # transport error
        return SendOutcome.RETRY
    return SendOutcome.FAILED  # InvalidArgumentError, ThirdPartyAuthError, 401/403, ...


def _classify_response(response: messaging.SendResponse) -> SendResult:
    if response.success:
        return SendResult(SendOutcome.SENT, message_id=response.message_id)
    exc = response.exception
    if exc is None:  # 2xx without a message name
        return SendResult(SendOutcome.FAILED, error_code="UNKNOWN", detail="FCM reply had no message name")
    return SendResult(_classify_exception(exc), error_code=_fcm_error_code(exc), detail=_short(exc))


def _classify_auth_failure(exc: google.auth.exceptions.GoogleAuthError) -> SendResult:
    """The OAuth2 token could not be obtained: nothing was sent."""
    if isinstance(exc, google.auth.exceptions.TransportError):  # token endpoint unreachable
        return SendResult(SendOutcome.RETRY, error_code="AUTH", detail=_short(exc))
    # RefreshError: rejected key (invalid_grant, deleted service account) unless Google says retryable.
    outcome = SendOutcome.RETRY if getattr(exc, "retryable", False) else SendOutcome.FAILED
    logger.error("fcm: could not obtain an access token: %s", exc)
    return SendResult(outcome, error_code="AUTH", detail=_short(exc))


def _classify_chunk_failure(exc: exceptions.FirebaseError) -> SendResult:
    cause = exc.cause
    if isinstance(cause, google.auth.exceptions.GoogleAuthError):  # token expired mid-batch
        return _classify_auth_failure(cause)
    if isinstance(cause, requests.RequestException):
        return SendResult(SendOutcome.RETRY, error_code="UNAVAILABLE", detail=_short(exc))
    logger.error("fcm send_each failed for a whole chunk", exc_info=exc)
    return SendResult(SendOutcome.FAILED, error_code=exc.code, detail=_short(exc))


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["FcmSender", "PushMessage", "SendOutcome", "SendResult"]
