"""Local HTTP stand-ins for the Google endpoints the backend talks to (no pytest dependency).

One threaded HTTP server on 127.0.0.1 (ephemeral port) plays three Google services so that the real
firebase-admin SDK can be exercised offline:

* ``POST /token`` - the OAuth2 token endpoint named by ``token_uri`` in a service-account JSON.  The
  JWT-bearer assertion is verified against the keys of the service accounts this stand-in generated.
* ``POST /v1/projects/<project>/messages:send`` - FCM HTTP v1.  Every request is recorded in
  ``fcm_requests``; the reply comes from the programmable ``fcm_responder(body) -> (status, json)``.
  Requests without ``Authorization: Bearer standin-token`` get Google's 401, like the real service.
* ``GET /jwks`` - the App Check public key set (``jwks``), for tokens built by ``make_app_check_token``.
* ``GET /v1/projects/-/serviceAccounts/<email>/allowedLocations`` - IAM Credentials' "regional access
  boundary" lookup.  google-auth (>= 2.5x) fires it in a background thread after a service account's
  first authorised request, at a hard-coded https://iamcredentials.googleapis.com URL.  While a
  stand-in runs, google-auth's URL builder is redirected here (``intercept_google_auth=True``), so
  tests stay offline and never send a token to Google; the lookups are counted in ``rab_lookups``.

Usage::

    with GoogleStandin() as google:
        sender = FcmSender(credentials_path=str(google.service_account_file(tmp_path)),
                           fcm_url=google.fcm_url, http_timeout=5)
        google.fcm_responder = lambda body: unregistered()

The SDK-facing URLs (``fcm_url``, ``jwks_url``) point at the stand-in; how they are injected into
firebase-admin is up to the caller (``FcmSender(fcm_url=...)``, ``_AppCheckService._JWKS_URL``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ACCESS_TOKEN = "standin-token"
DEFAULT_PROJECT_ID = "sanad-test"
DEFAULT_PROJECT_NUMBER = "123456789012"
APP_CHECK_ISSUER_PREFIX = "https://firebaseappcheck.googleapis.com/"
# google-auth always signs its JWT-bearer assertion for this audience, whatever the token_uri is.
GOOGLE_OAUTH2_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

FcmReply = tuple[int, dict[str, Any]] | tuple[int, dict[str, Any], Mapping[str, str]]
FcmResponder = Callable[[dict[str, Any]], FcmReply]
TokenResponder = Callable[[dict[str, str]], tuple[int, dict[str, Any]]]

_FCM_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")
_RAB_PATH = re.compile(r"^/v1/projects/-/serviceAccounts/(?P<email>[^/]+)/allowedLocations$")


# --------------------------------------------------------------------------------------------------
# Google error bodies (shape of google.rpc.Status as returned by FCM HTTP v1)
# --------------------------------------------------------------------------------------------------


def google_error(
    code: int,
    status: str,
    message: str,
    fcm_error_code: str | None = None,
    extra_details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Google API error body; ``fcm_error_code`` adds the FcmError detail FCM v1 attaches."""
    details: list[dict[str, Any]] = []
    if fcm_error_code is not None:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_error_code})
    details.extend(extra_details or [])
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def unregistered() -> tuple[int, dict[str, Any]]:
    """404: the registration token is no longer valid (app uninstalled, token rotated)."""
    return 404, google_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")


def sender_id_mismatch() -> tuple[int, dict[str, Any]]:
    """403: the token belongs to another Firebase project's sender ID."""
    return 403, google_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")


def quota_exceeded() -> tuple[int, dict[str, Any]]:
    """429: message rate exceeded (per device, per topic or per project)."""
    return 429, google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Send requests' of service 'fcm.googleapis.com'.",
        "QUOTA_EXCEEDED",
    )


def invalid_argument(
    message: str = "The registration token is not a valid FCM registration token",
    field: str = "message.token",
) -> tuple[int, dict[str, Any]]:
    """400: malformed message or token."""
    bad_request = {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": field, "description": message}],
    }
    return 400, google_error(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT", [bad_request])


def unavailable() -> tuple[int, dict[str, Any]]:
    """503: FCM overloaded (the SDK retries it with backoff before giving up)."""
    return 503, google_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")


def internal() -> tuple[int, dict[str, Any]]:
    """500: FCM internal error (the SDK retries it with backoff before giving up)."""
    return 500, google_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL")


def unauthenticated() -> tuple[int, dict[str, Any]]:
    return 401, google_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
    )


# --------------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------------


def generate_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit key (~0.1 s)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


_key_cache: dict[str, rsa.RSAPrivateKey] = {}
_key_cache_lock = threading.Lock()


def cached_rsa_key(name: str) -> rsa.RSAPrivateKey:
    """A key generated once per process and name: test keys need not be unique, just fast."""
    with _key_cache_lock:
        if name not in _key_cache:
            _key_cache[name] = generate_rsa_key()
        return _key_cache[name]


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON (FCM) or form fields (token endpoint)
    received_at: float


# --------------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # send_each opens one connection per message, in parallel

    def __init__(self, standin: GoogleStandin) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout test) leaves a broken pipe behind: not worth a traceback.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Google's front ends
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        standin = self.server.standin
        raw = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token":
            self._reply(*standin._handle_token(raw, headers))
            return
        match = _FCM_PATH.match(path)
        if match:
            self._reply(*standin._handle_fcm(match["project"], raw, headers, self.path))
            return
        self._reply(404, google_error(404, "NOT_FOUND", f"No stand-in for POST {path}"))

    def do_GET(self) -> None:
        standin = self.server.standin
        path = urllib.parse.urlsplit(self.path).path
        if path == "/jwks":
            with standin._lock:
                standin.jwks_fetches += 1
                status, body = standin.jwks_status, standin.jwks
            self._reply(status, body if status == 200 else {"error": "stand-in jwks_status"})
            return
        match = _RAB_PATH.match(path)
        if match:
            with standin._lock:
                standin.rab_lookups += 1
            self._reply(200, {"locations": ["me-central2", "us-central1"], "encodedLocations": "0x3"})
            return
        self._reply(404, google_error(404, "NOT_FOUND", f"No stand-in for GET {path}"))


class GoogleStandin:
    """Google OAuth2 + FCM v1 + App Check JWKS on loopback. Use as a context manager."""

    def __init__(
        self,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        project_number: str = DEFAULT_PROJECT_NUMBER,
        intercept_google_auth: bool = True,
    ) -> None:
        self.project_id = project_id
        self.project_number = project_number
        self.intercept_google_auth = intercept_google_auth
        self.app_check_kid = "standin-app-check-key"
        self.app_check_key = cached_rsa_key("app-check")
        self._service_account_keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Forgets recorded traffic and restores the default replies (for a stand-in shared by tests)."""
        with self._lock:
            self.fcm_requests: list[RecordedRequest] = []
            self.token_requests: list[RecordedRequest] = []
            self.jwks_fetches = 0
            self.rab_lookups = 0
            self.jwks_status = 200
            # Programmable replies.  fcm_responder may also return (status, json, extra_headers).
            self.fcm_responder: FcmResponder = self.default_fcm_responder
            self.token_responder: TokenResponder | None = None  # None: check the assertion, issue a token
            self.responder_errors: list[BaseException] = []  # exceptions raised by a responder
            # Served as is at /jwks; a test may replace it.
            self.jwks: dict[str, Any] = {"keys": [public_jwk(self.app_check_key, self.app_check_kid)]}
            self._message_counter = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> GoogleStandin:
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="google-standin",
            daemon=True,
        )
        self._thread.start()
        if self.intercept_google_auth:
            _google_auth_redirect.push(self)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self.intercept_google_auth:
            _google_auth_redirect.remove(self)
        server.shutdown()
        with server.connections_lock:
            connections = list(server.open_connections)
        for conn in connections:  # end keep-alive connections still held by SDK sessions
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GoogleStandin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- URLs --------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def fcm_url(self) -> str:
        """Same shape as ``firebase_admin.messaging._MessagingService.FCM_URL``: ``{0}`` = project id."""
        return f"{self.base_url}/v1/projects/{{0}}/messages:send"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks"

    # -- service accounts --------------------------------------------------------------------------

    def service_account_info(self, *, project_id: str | None = None) -> dict[str, Any]:
        """A service-account key (fresh RSA key) whose token_uri is this stand-in."""
        project = project_id or self.project_id
        key = cached_rsa_key("service-account")
        email = f"firebase-adminsdk-{uuid.uuid4().hex[:5]}@{project}.iam.gserviceaccount.com"
        with self._lock:
            self._service_account_keys[email] = key.public_key()
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": uuid.uuid4().hex,
            "private_key": private_key_pem(key),
            "client_email": email,
            "client_id": str(uuid.uuid4().int)[:21],
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
            + urllib.parse.quote(email),
            "universe_domain": "googleapis.com",
        }

    def service_account_file(self, directory: str | Path, *, project_id: str | None = None) -> Path:
        """Writes ``service_account_info()`` as JSON into ``directory`` and returns the file path."""
        info = self.service_account_info(project_id=project_id)
        path = Path(directory) / f"service-account-{info['private_key_id'][:8]}.json"
        path.write_text(json.dumps(info, indent=2))
        return path

    # -- App Check ---------------------------------------------------------------------------------

    def make_app_check_token(
        self,
        project_number: str,
        app_id: str,
        *,
        project_id: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        headers: Mapping[str, Any] | None = None,
        ttl_seconds: int = 3600,
        **claim_overrides: Any,
    ) -> str:
        """An App Check token as Firebase issues it, signed with the key served at ``jwks_url``.

        Claims: iss ``https://firebaseappcheck.googleapis.com/<number>``, aud
        ``["projects/<number>", "projects/<project id>"]``, sub = app id, iat/exp.  ``claim_overrides``
        replace claims (a value of ``None`` removes the claim); ``headers`` replace JOSE headers
        (e.g. ``{"kid": "unknown"}``); ``key`` signs with another private key.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": app_id,
            "aud": [f"projects/{project_number}", f"projects/{project_id or self.project_id}"],
            "provider": "play_integrity",
            "iss": f"{APP_CHECK_ISSUER_PREFIX}{project_number}",
            "exp": now + ttl_seconds,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        for name, value in claim_overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        jose_headers: dict[str, Any] = {"kid": self.app_check_kid, "typ": "JWT"}
        jose_headers.update(headers or {})
        return jwt.encode(claims, key or self.app_check_key, algorithm="RS256", headers=jose_headers)

    # -- FCM ---------------------------------------------------------------------------------------

    def default_fcm_responder(self, body: dict[str, Any]) -> FcmReply:
        return 200, {"name": f"projects/{self.project_id}/messages/{next(self._message_counter)}"}

    def fcm_bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [request.body for request in self.fcm_requests]

    def fcm_requests_for(self, token: str) -> list[RecordedRequest]:
        """Requests whose ``message.token`` is ``token`` (send_each posts in parallel: order varies)."""
        with self._lock:
            return [
                request
                for request in self.fcm_requests
                if isinstance(request.body, dict) and request.body.get("message", {}).get("token") == token
            ]

    # -- handlers (called from server threads) -------------------------------------------------------

    def _handle_token(self, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        with self._lock:
            self.token_requests.append(RecordedRequest("POST", "/token", headers, form, time.time()))
            responder = self.token_responder
        if responder is not None:
            return responder(form)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
        assertion = form.get("assertion", "")
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            public_key = self._service_account_keys.get(issuer)
            if public_key is None:
                raise jwt.InvalidTokenError(f"unknown service account {issuer!r}")
            jwt.decode(assertion, public_key, algorithms=["RS256"], audience=GOOGLE_OAUTH2_AUDIENCE)
        except jwt.InvalidTokenError as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}
        return 200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}

    def _handle_fcm(
        self, project: str, raw: bytes, headers: dict[str, str], path: str
    ) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        try:
            body: Any = json.loads(raw or b"null")
        except ValueError:
            return 400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), {}
        with self._lock:
            self.fcm_requests.append(RecordedRequest("POST", path, headers, body, time.time()))
            responder = self.fcm_responder
        if headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return (*unauthenticated(), {})
        try:
            reply = responder(body)
        except Exception as exc:  # surfaced to the test through responder_errors
            with self._lock:
                self.responder_errors.append(exc)
            return 500, google_error(500, "INTERNAL", f"stand-in responder raised {exc!r}"), {}
        status, payload, *rest = reply
        return status, payload, (rest[0] if rest else {})


# --------------------------------------------------------------------------------------------------
# google-auth's regional access boundary lookup -> the newest running stand-in
# --------------------------------------------------------------------------------------------------


class _GoogleAuthRedirect:
    """Patches google-auth's private RAB URL builder while at least one stand-in runs."""

    _FUNCTION = "get_service_account_rab_endpoint"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._standins: list[GoogleStandin] = []
        self._original: Callable[[str], str] | None = None

    def _module(self) -> Any:
        try:
            from google.auth import _regional_access_boundary_utils as module  # private, google-auth 2.6x
        except ImportError:  # older google-auth: no lookup to redirect
            return None
        return module if hasattr(module, self._FUNCTION) else None

    def push(self, standin: GoogleStandin) -> None:
        module = self._module()
        if module is None:
            return
        with self._lock:
            self._standins.append(standin)
            if self._original is None:
                self._original = getattr(module, self._FUNCTION)
                setattr(module, self._FUNCTION, self._endpoint)

    def remove(self, standin: GoogleStandin) -> None:
        module = self._module()
        with self._lock:
            if standin in self._standins:
                self._standins.remove(standin)
            if not self._standins and self._original is not None and module is not None:
                setattr(module, self._FUNCTION, self._original)
                self._original = None

    def _endpoint(self, service_account_email: str) -> str:
        with self._lock:
            standin = self._standins[-1] if self._standins else None
        if standin is None or standin._server is None:  # raced with stop(): unroutable, stays offline
            return "http://127.0.0.1:9/allowedLocations"
        email = urllib.parse.quote(service_account_email, safe="@")
        return f"{standin.base_url}/v1/projects/-/serviceAccounts/{email}/allowedLocations"


_google_auth_redirect = _GoogleAuthRedirect()
