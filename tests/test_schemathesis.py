"""Property-based requests generated from our own OpenAPI document (schemathesis), sent over
real HTTP to a server on each backend: whatever comes in, the API never answers 5xx, and every
refusal is in the one error shape. First every operation alone, then sequences that follow the
document's links (create a source, collect or track for it, read the event back, ...)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition

from eventstitch.storage import BACKENDS
from tests.conftest import API_TOKEN, LiveServer, create_source, start_server
from tests.pg import backend_params, fresh_database_url

pytestmark = pytest.mark.e2e  # every test here starts a real server process

STATELESS_EXAMPLES = 12
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 8
STATEFUL_ROUNDS = 4
STATEFUL_SECONDS = 30
ALWAYS_LISTED = {"POST /collect/{event_type}/{source_id}", "GET /collect/{event_type}/{source_id}"}


@pytest.fixture(params=backend_params(BACKENDS))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """`eventstitch serve` on a free loopback port, on SQLite or on a fresh PostgreSQL schema."""
    env: dict[str, str] = {}
    with fresh_database_url() if request.param == "postgres" else _no_url() as url:
        if url:
            env["EVENTSTITCH_DATABASE_URL"] = url
        live = start_server(tmp_path / "data", tmp_path / "server.log", **env)
        try:
            with live.client() as http:
                create_source(http, id="hooks")
                create_source(http, id="web", kind="tracker")
            yield live
        finally:
            live.stop()


class _no_url:
    def __enter__(self) -> str:
        return ""

    def __exit__(self, *_: object) -> None:
        return None


def check(response: Any, label: str) -> None:
    """No 5xx, and every refusal in the one error shape."""
    assert response.status_code < 500, (label, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"ok", "error", "errors", "status"}, (label, body)
        assert body["status"] == response.status_code


def test_no_generated_request_makes_the_api_answer_5xx(server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    listed = {f"{op.method.upper()} {op.path}" for op in operations}
    assert ALWAYS_LISTED | {"POST /track", "POST /api/sources"} <= listed
    calls = 0
    for operation in operations:

        @settings(
            max_examples=STATELESS_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def probe(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(
                base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
            )
            check(response, f"{case.method} {case.formatted_path}")

        probe()
    assert calls >= STATELESS_EXAMPLES * len(operations) // 2
    print(f"schemathesis stateless: {calls} requests to {len(operations)} operations, none 5xx")


def test_no_sequence_of_linked_requests_makes_the_api_answer_5xx(server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    sent: Counter[str] = Counter()
    followed: Counter[str] = Counter()
    problems: list[str] = []  # kept, not raised: a replay would meet a server in another state

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {
                "base_url": server.url,
                "headers": {"Authorization": f"Bearer {API_TOKEN}"},
                "timeout": 10,
            }

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                followed[input.transition.id] += 1
            return super().step(input)

        def validate_response(self, response: Any, case: Any, **_: Any) -> None:
            label = f"{case.method} {case.operation.path}"
            sent[label] += 1
            try:
                check(response, label)
            except AssertionError as problem:
                problems.append(f"{label} {case.path_parameters} {case.query}: {problem}")

    # What is drawn depends on the server's answers, so Hypothesis may meet a drawing it has
    # seen behave differently and stop a round (FlakyStrategyDefinition); a 5xx is never lost
    # that way, as each answer is checked as it comes. Several short rounds, bounded in time.
    run_settings = settings(
        max_examples=STATEFUL_SCENARIOS,
        stateful_step_count=STATEFUL_STEPS,
        deadline=None,
        phases=[Phase.generate],
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    rounds = 0
    stop_at = time.monotonic() + STATEFUL_SECONDS
    while rounds < STATEFUL_ROUNDS and time.monotonic() < stop_at:
        rounds += 1
        with contextlib.suppress(FlakyStrategyDefinition):
            Machine.run(settings=run_settings)
    assert problems == []
    assert sum(followed.values()) > 0, "no link was followed"
    assert "POST /api/sources" in sent
    print(
        f"schemathesis stateful: {sum(sent.values())} requests to {len(sent)} operations, "
        f"{sum(followed.values())} links followed ({len(followed)} kinds) in {rounds} rounds, "
        "none 5xx"
    )
    for label, n in sorted(followed.items()):
        print(f"  followed {n:4} {label}")
