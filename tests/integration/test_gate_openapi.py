"""Property-based calls generated from the gate's OpenAPI description."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from hypothesis import HealthCheck, given, settings

from tests.helpers.gate import GateServer, start_gate, stop_gate


@pytest.fixture(scope="module")
def openapi_gate(tmp_path_factory) -> Iterator[GateServer]:
    server = start_gate(tmp_path_factory.mktemp("openapi"))
    try:
        yield server
    finally:
        stop_gate(server)


@pytest.fixture(scope="module")
def api_schema(openapi_gate):
    status, document = openapi_gate.call("GET", "/openapi.json")
    assert status == 200
    return schemathesis.openapi.from_dict(document)


def _operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def test_gate_conforms_to_openapi(api_schema, openapi_gate):
    headers = {"Authorization": f"Bearer {openapi_gate.token}"}
    operations = _operations(api_schema)
    assert {operation.label for operation in operations} == {
        "GET /healthz", "GET /v1/verdicts/{image}", "POST /v1/decisions",
        "POST /v1/admission", "GET /openapi.json"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            # A reference can fit the schema and still be malformed, such as a tag
            # with a character tags forbid. The gate rejects it with 422, so the
            # check that every schema-valid request succeeds is left out.
            case.call_and_validate(base_url=openapi_gate.url, headers=headers,
                                   verify=str(openapi_gate.certificate),
                                   excluded_checks=[positive_data_acceptance])

        call()
