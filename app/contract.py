"""The OpenAPI document says what every operation answers, written once here rather than by each route.

An apispec plugin completes each operation as flask-smorest registers it: an `operationId` from the
Flask endpoint; the refusals it can give (401/403 where it needs a token, 404 where its path names
something, 422 where it reads input, 429 everywhere: every route has a rate limit; 503 everywhere: any
operation can meet an outage), each with the error
envelope, its codes and one example per code; the `Accept-Language` header; and example request and
answer bodies built from the schemas. A route adds its own business refusals with `@refusals(...)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from apispec import BasePlugin

from app.errors import AppError

ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
STATUS_DESCRIPTIONS = {
    401: "Not signed in, or the token is not valid (`WWW-Authenticate: Bearer`)",
    403: "Signed in, but not allowed",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state",
    410: "Gone",
    422: "Bad input (`details.fields` names each field) or a business rule refused it",
    429: "Too many requests (`Retry-After` says when to try again)",
    503: "A service it depends on is unavailable (`Retry-After` says when to try again)",
}
ACCEPT_LANGUAGE = {
    "in": "header",
    "name": "Accept-Language",
    "required": False,
    "schema": {"type": "string", "example": "ar"},
    "description": "`ar` or `en`: the language of messages. Without it, the signed-in account's language; "
    "anonymous callers get Arabic.",
}
# The refusals flask-smorest's and our shell's machinery can give any operation of a kind.
GENERIC = {
    "unauthorized": (401, "Sign in to continue."),
    "invalid_token": (401, "Your session is not valid. Please sign in again."),
    "forbidden": (403, "You are not allowed to do this."),
    "centre_forbidden": (403, "You can act only in your own centre."),
    "not_found": (404, "Not found."),
    "validation_error": (422, "Some fields are missing or invalid."),
    "rate_limited": (429, "Too many requests. Please wait and try again."),
    "unavailable": (503, "The service is briefly unavailable. Please try again in a moment."),
}
REFUSALS_KEY = "x-refusals"


def refusals(*errors: type[AppError]) -> Callable:
    """Decorate a view (below `@bp.route`): document these refusals on its operation, one example each."""

    def decorator(view: Callable) -> Callable:
        from app.security import document

        listed = [{"status": e.status, "code": e.code, "message": str(e.message)} for e in errors]
        existing = getattr(view, "_apidoc", {}).get("manual_doc", {}).get(REFUSALS_KEY, [])
        return document(view, **{REFUSALS_KEY: [*existing, *listed]})

    return decorator


def error_example(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    """An error envelope as the API sends it."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


class ContractPlugin(BasePlugin):
    """Completes every operation of the document (see the module's docstring)."""

    def init_spec(self, spec) -> None:
        self.spec = spec

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        for method, operation in (operations or {}).items():
            if rule is not None:
                operation.setdefault("operationId", _operation_id(rule.endpoint, method, operations))
            listed = operation.pop(REFUSALS_KEY, [])
            if not (path or "").startswith("/api/"):
                continue
            self._document_refusals(path or "", method, operation, listed)
            _add_parameter(operation, ACCEPT_LANGUAGE)
            self._add_examples(operation)

    # ----------------------------------------------------------------------------------- refusals

    def _document_refusals(self, path: str, method: str, operation: dict, listed: list[dict]) -> None:
        codes: dict[int, dict[str, str]] = {}

        def add(status: int, code: str, message: str) -> None:
            codes.setdefault(status, {}).setdefault(code, message)

        secured = bool(operation.get("security"))
        if secured:
            for code in ("unauthorized", "invalid_token", "forbidden"):
                add(GENERIC[code][0], code, GENERIC[code][1])
            if "{centre_id}" in path or "/staff/" in path or "/tickets/" in path:
                add(403, "centre_forbidden", GENERIC["centre_forbidden"][1])
        reads_input = (
            "{" in path
            or "requestBody" in operation
            or any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict))
        )
        if reads_input:  # whatever a path or a body names (a centre, a service, a slot) may not exist
            add(404, "not_found", GENERIC["not_found"][1])
        if reads_input or method in ("post", "patch", "put"):
            add(422, "validation_error", GENERIC["validation_error"][1])
        add(429, "rate_limited", GENERIC["rate_limited"][1])
        if any(
            isinstance(p, dict) and p.get("name") == "Idempotency-Key"
            for p in operation.get("parameters", [])
        ):
            from app.idempotency import IdempotencyInProgress, IdempotencyKeyReused

            for error in (IdempotencyKeyReused, IdempotencyInProgress):
                add(error.status, error.code, str(error.message))
        for entry in listed:
            add(entry["status"], entry["code"], entry["message"])
        # Any operation can meet an outage (PostgreSQL unreachable): 503 everywhere, after the
        # route's own 503s so that their message is the example where there are some.
        add(503, "unavailable", GENERIC["unavailable"][1])
        responses = operation.setdefault("responses", {})
        for status in sorted(codes):
            described = ", ".join(f"`{code}`" for code in codes[status])
            responses[str(status)] = {
                "description": f"{STATUS_DESCRIPTIONS.get(status, 'Refused')}. Codes: {described}.",
                "content": {
                    "application/json": {
                        "schema": ERROR_SCHEMA_REF,
                        "examples": {
                            code: {"summary": code, "value": error_example(code, message, _details(code))}
                            for code, message in codes[status].items()
                        },
                    }
                },
            }

    # ----------------------------------------------------------------------------------- examples

    def _add_examples(self, operation: dict) -> None:
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and "example" not in body and "examples" not in body:
            body["example"] = self._example(body.get("schema", {}), reading=True)
        for status, response in operation.get("responses", {}).items():
            if not str(status).startswith("2") or not isinstance(response, dict):
                continue
            for media, content in response.get("content", {}).items():
                if "example" in content or "examples" in content:
                    continue
                if media == "application/json":
                    content["example"] = self._example(content.get("schema", {}), reading=False)
                elif media == "text/event-stream":
                    content["example"] = SSE_EXAMPLE
                else:
                    content["example"] = MEDIA_EXAMPLES.get(media, "…")

    def _example(self, schema: Any, *, reading: bool, depth: int = 0, name: str = "") -> Any:
        """A plausible value for `schema`: its own example, a known one for the field's name, else by type."""
        if not isinstance(schema, dict) or depth > 6:
            return None
        if "$ref" in schema:
            target = self.spec.components.schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
            return self._example(target, reading=reading, depth=depth + 1, name=name)
        if "example" in schema:
            return schema["example"]
        if schema.get("enum"):
            return schema["enum"][0]
        kind = schema.get("type")
        known = FIELD_EXAMPLES.get(name)
        if kind == "string" and isinstance(known, str) and schema.get("pattern") not in PATTERN_EXAMPLES:
            return known
        if kind == "array" and isinstance(known, list):
            return known
        if kind == "object" or "properties" in schema:
            properties = {}
            for prop, sub in schema.get("properties", {}).items():
                if isinstance(sub, dict) and (sub.get("readOnly") if reading else sub.get("writeOnly")):
                    continue
                properties[prop] = self._example(sub, reading=reading, depth=depth + 1, name=prop)
            return properties
        if kind == "array":
            item = self._example(schema.get("items", {}), reading=reading, depth=depth + 1, name=name)
            return [item] if item is not None else []
        if kind == "integer":
            minimum = schema.get("minimum")
            return minimum if isinstance(minimum, int) and minimum > 1 else 1
        if kind == "number":
            return 1.5
        if kind == "boolean":
            return False
        if kind == "string":
            return _string_example(schema)
        if name in ("start", "end") or name.endswith("_at"):  # a method field: an instant, centre-local
            return "2026-12-01T10:00:00+03:00"
        return "string" if name else None


def _operation_id(endpoint: str, method: str, operations: dict) -> str:
    """`booking.hold` → `booking_hold`; a MethodView's `me.Me` → `me_get`, `me_patch`."""
    blueprint, _, view = endpoint.partition(".")
    name = f"{blueprint}_{view}" if view and view.lower() != blueprint.lower() else blueprint
    name = re.sub(r"[^A-Za-z0-9_]", "_", name).lower()
    return f"{name}_{method}" if len(operations) > 1 or view[:1].isupper() else name


def _add_parameter(operation: dict, parameter: dict) -> None:
    parameters = operation.setdefault("parameters", [])
    if not any(isinstance(p, dict) and p.get("name") == parameter["name"] for p in parameters):
        parameters.append(dict(parameter))


def _details(code: str) -> dict:
    return DETAILS_EXAMPLES.get(code, {})


def _string_example(schema: dict) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return "2026-12-01"
    if fmt == "date-time":
        return "2026-12-01T10:00:00+03:00"
    pattern = schema.get("pattern")
    if pattern in PATTERN_EXAMPLES:
        return PATTERN_EXAMPLES[pattern]
    return "x" * max(int(schema.get("minLength", 0)), 6) if schema.get("minLength") else "string"


MEDIA_EXAMPLES = {
    "text/calendar": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n…\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 33 33">…</svg>',
}
SSE_EXAMPLE = (
    'event: snapshot\ndata: {"centre_id": "amman-muqabalain", "waiting": {"passport.renew": 3}, …}\n\n'
    'event: ticket.called\ndata: {"number": "P-042", "counter": {"number": 2}, …}\n\n'
    ": keep-alive\n\n"
)
FIELD_EXAMPLES: dict[str, Any] = {
    "national_id": "9990000001",
    "password": "Demo-pass-2026",
    "phone": "+962790000001",
    "full_name": "Demo Citizen",
    "date_of_birth": "1990-01-15",
    "residence_country": "JO",
    "service": "passport.renew",
    "service_code": "passport.renew",
    "centre_id": "amman-muqabalain",
    "reference": "BK-7K3MQ9",
    "timezone": "Asia/Amman",
    "refresh_token": "rt_2mA9…",
    "access_token": "eyJhbGciOiJIUzI1NiIs…",
    "token": "fcm-registration-token",
    "device_id": "install-5f2c",
    "code": "123456",
    "reason": "Medical treatment abroad on Thursday",
    "note": "Approved with the hospital letter",
    "travel_date": "2026-12-10",
    "services": ["passport.renew"],
}
PATTERN_EXAMPLES = {
    r"^\d{10}$": "9990000001",
    r"^\d{6}$": "123456",
    r"^[A-Za-z]{2}$": "JO",
    r"^[a-z0-9][a-z0-9-]{1,62}$": "amman-muqabalain",
    r"^[a-z_]+\.[a-z_]+$": "passport.renew",
    r"^[A-Z]{1,2}$": "P",
}
DETAILS_EXAMPLES: dict[str, dict] = {
    "validation_error": {"fields": {"slot_id": ["Not a valid integer."]}},
    "rate_limited": {"limit": "20 per 1 minute"},
    "slot_full": {"slot_id": 1042},
    "outside_horizon": {"reason": "horizon", "latest": "2026-12-31T10:00:00+03:00"},
    "booking_suspended": {"reason": "no_show", "scope": "high_demand", "until": "2026-12-31T10:00:00+03:00"},
    "not_eligible": {"reason": "passport_not_expiring", "renewal_opens_on": "2027-03-05"},
    "centre_closed": {"opens_at": "2026-12-02T08:00:00+03:00"},
    "counter_taken": {
        "counter_id": 12,
        "held_by": "Demo Clerk",
        "held_by_account_id": 41,
        "since": "2026-12-01T08:02:00+03:00",
    },
    "already_at_counter": {"counter_id": 13, "number": 2, "since": "2026-12-01T08:02:00+03:00"},
    "check_in_window": {
        "reason": "too_early",
        "window_start": "2026-12-01T09:30:00+03:00",
        "window_end": "2026-12-01T10:15:00+03:00",
    },
}
