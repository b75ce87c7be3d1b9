"""Property-based requests generated from our own OpenAPI document (schemathesis), sent over
real HTTP: whatever comes in, the API never answers 5xx, and every refusal is in the one error
shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import API_TOKEN, create_source, start_server

pytestmark = pytest.mark.e2e  # every test here starts a real server process


def test_no_generated_request_makes_the_api_answer_5xx(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        with server.client() as http:
            create_source(http, id="hooks")
            create_source(http, id="web", kind="tracker")
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 10
        checked: list[str] = []
        calls = 0
        for operation in operations:

            @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def probe(case: Any) -> None:
                nonlocal calls
                calls += 1
                response = case.call(
                    base_url=server.url,
                    headers={"Authorization": f"Bearer {API_TOKEN}"},
                    timeout=10,
                )
                label = f"{case.method} {case.formatted_path}"
                assert response.status_code < 500, (label, response.text[:300])
                if response.status_code >= 400:
                    body = response.json()
                    assert set(body) == {"ok", "error", "errors", "status"}, (label, body)
                    assert body["status"] == response.status_code

            probe()
            checked.append(f"{operation.method.upper()} {operation.path}")
        assert "POST /collect/{event_type}/{source_id}" in checked
        assert calls >= 10 * len(operations)
        print(f"schemathesis: {calls} requests to {len(operations)} operations, none 5xx")
    finally:
        server.stop()
