"""Object-level authorisation harness every domain reuses.

- `assert_hidden_from(client, requests, headers)`: another citizen gets 404 (never 403, never data).
- `assert_forbidden(client, requests, headers)`: a role without the right gets 403.
- `assert_needs_auth(client, requests)`: no token → 401.
A request is `(method, path)` or `(method, path, json_body)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Request = tuple[str, str] | tuple[str, str, Any]


def _send(client, request: Request, headers: Mapping[str, str] | None):
    method, path, *rest = request
    body = rest[0] if rest else ({} if method.upper() in {"POST", "PUT", "PATCH"} else None)
    return client.open(path, method=method.upper(), json=body, headers=dict(headers or {}))


def _assert_status(
    client, requests: Iterable[Request], headers, expected: int, code: str | None = None
) -> None:
    for request in requests:
        response = _send(client, request, headers)
        assert response.status_code == expected, (request, response.status_code, response.get_json())
        envelope = response.get_json()
        assert set(envelope) == {"error"}, (request, envelope)
        if code is not None:
            assert envelope["error"]["code"] == code, (request, envelope)


def assert_hidden_from(client, requests: Iterable[Request], headers) -> None:
    """Another citizen's resources answer 404 with no trace of their data."""
    _assert_status(client, requests, headers, 404)


def assert_forbidden(client, requests: Iterable[Request], headers) -> None:
    """A role without the right (or staff of another centre) answers 403."""
    _assert_status(client, requests, headers, 403)


def assert_needs_auth(client, requests: Iterable[Request]) -> None:
    """Anonymous callers answer 401."""
    _assert_status(client, requests, None, 401)
