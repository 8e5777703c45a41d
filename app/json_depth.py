"""Refuse a JSON body nested deeper than any of our schemas before anything parses it.

Python's json module and marshmallow recurse once per level: a 2.5 kB body of 500 nested lists reached a
RecursionError (a 500) in the request's parsing. The raw bytes are scanned instead, by one regular
expression over strings and brackets, so the refusal costs no parsing at all.
"""

from __future__ import annotations

import json
import re

from flask import Flask, request
from flask_babel import gettext

from app.errors import ValidationFailed

# The deepest body the API reads is an offering's weekly hours: {"weekly_hours": {"sun": [["08:00", …]]}}.
MAX_JSON_DEPTH = 16
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:]')
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_INNERMOST = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")


def too_deep_field(body: bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """The top-level field whose value nests deeper than `limit` (`_schema` for the body itself), or None."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return None
    # Each pass deletes every innermost container, at C speed: what survives `limit` passes is deeper.
    rest = _STRINGS.sub(b'""', body)
    for _ in range(limit):
        reduced = _INNERMOST.sub(b"", rest)
        if len(reduced) == len(rest):
            return None
        rest = reduced
    if b"[" not in rest and b"{" not in rest:
        return None
    return _field_deeper_than(body, limit)


def _field_deeper_than(body: bytes, limit: int) -> str | None:
    """Walk the tokens to name the field (only for a body already known to be too deep)."""
    depth = 0
    top_key: bytes | None = None
    last_string: bytes | None = None
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return _field_name(top_key)
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b":":
            if depth == 1:
                top_key = last_string
        else:
            last_string = token
    return None


def _field_name(raw: bytes | None) -> str:
    if raw is None:
        return "_schema"
    try:
        return str(json.loads(raw))[:100]
    except ValueError:
        return "_schema"


def register_json_depth_check(app: Flask) -> None:
    """Every JSON request body is scanned for its depth before a view (and webargs) reads it."""

    @app.before_request
    def _refuse_deep_json() -> None:
        if not request.is_json:
            return
        field = too_deep_field(request.get_data(cache=True))
        if field is not None:
            message = gettext("Nested more than %(limit)s levels deep.", limit=MAX_JSON_DEPTH)
            raise ValidationFailed(details={"fields": {field: [message]}})
