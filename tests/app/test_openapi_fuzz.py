"""schemathesis over the whole OpenAPI document, in-process: no 5xx, answers match their schemas, and every
refusal of schema-valid input is one the document names for that operation (status and code).

The operations are driven through schemathesis' Python API (`as_strategy` + hypothesis) rather than its
pytest plugin, whose lazy fixture loader does not work with pytest 9.
"""

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

FUZZ = settings(
    max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
SKIP = re.compile(r"/stream$")  # an endless server-sent-event stream has no answer to validate
# Schema-valid input can still break a business rule (a registry mismatch, a full slot): such answers are
# refusals the document lists per operation, which `refusals_are_documented` holds the app to. The
# built-in check would instead demand 2xx (or 401/403/404/409/429) for any schema-valid input.
REPLACED = [positive_data_acceptance]


@schemathesis.check
def refusals_are_documented(ctx, response, case):
    """A 4xx answer to schema-valid input is documented on the operation, with its error code."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not 400 <= response.status_code < 500:
        return None
    documented = case.operation.definition.raw.get("responses", {}).get(str(response.status_code))
    assert documented is not None, f"undocumented status {response.status_code}"
    examples = documented.get("content", {}).get("application/json", {}).get("examples", {})
    code = (response.json() or {}).get("error", {}).get("code")
    assert code in examples, f"{response.status_code} `{code}` is not among the documented {sorted(examples)}"
    return None


def _operations(app, include: str = ""):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        if SKIP.search(operation.path) or not re.search(include, operation.path):
            continue
        yield operation


def _fuzz(app, headers, include: str = "") -> None:
    failures = []
    operations = list(_operations(app, include))
    assert operations
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(
                headers=headers, excluded_checks=REPLACED, additional_checks=[refusals_are_documented]
            )

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)


@pytest.fixture
def citizen_headers(make):
    return make.headers(make.citizen())


def test_api_as_a_citizen(app, citizen_headers):
    _fuzz(app, citizen_headers)


def test_admin_and_staff_routes_as_an_admin(app, make):
    _fuzz(app, make.headers(make.account("admin")), include=r"^/api/v1/(admin|staff)/")


def test_every_operation_documents_its_refusals_and_examples(client):
    spec = client.get("/api/v1/openapi.json").json
    ids = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            ids.append(operation["operationId"])
            responses = operation["responses"]
            assert "429" in responses, (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) and status != "default":
                    content = response["content"]["application/json"]
                    assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
                    assert content["examples"], (method, path, status)
            names = {p["name"] for p in operation.get("parameters", [])}
            assert "Accept-Language" in names, (method, path)
            if "requestBody" in operation:
                assert operation["requestBody"]["content"]["application/json"]["example"], (method, path)
            answers = [r for s, r in responses.items() if s.startswith("2") and r.get("content")]
            assert all(any("example" in c for c in r["content"].values()) for r in answers), (method, path)
    assert len(ids) == len(set(ids))
    hold = spec["paths"]["/api/v1/bookings"]["post"]
    assert {"slot_full", "hold_limit"} <= set(
        hold["responses"]["409"]["content"]["application/json"]["examples"]
    )
    assert "Idempotency-Key" in {p["name"] for p in hold["parameters"]}
    stream = spec["paths"]["/api/v1/centres/{centre_id}/queue/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
