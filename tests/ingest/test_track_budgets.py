"""`/track` budgets: events per call, and what one call may store over all its events."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from tests.conftest import (
    API_TOKEN,
    all_events,
    assert_error_shape,
    create_source,
    uses_sqlite_file,
)

BODY_SIZE = 16_000
"""Every call of the byte-budget test has this body size, so its stored headers (with
Content-Length) are the same whatever its padding."""


def _client(config: Config, **settings: Any) -> Iterator[TestClient]:
    app = EventstitchApp(dataclasses.replace(config, **settings))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(test_client, id="web", kind="tracker")
        yield test_client


@pytest.fixture
def small_budget(config: Config) -> Iterator[TestClient]:
    yield from _client(config, track_max_stored_bytes=20_000, track_max_events=5)


@pytest.fixture
def default_budget(config: Config) -> Iterator[TestClient]:
    yield from _client(config)


def _padded_call(own_padding: int) -> bytes:
    """A call of 5 events sharing a 2 KB context; the first event carries `own_padding`
    characters of its own; an ignored field keeps the body at BODY_SIZE bytes."""

    def body(filler: int) -> bytes:
        return orjson.dumps(
            {
                "source": {"id": "web"},
                "context": {"page": "c" * 2000},
                "events": [
                    {"type": "view", "properties": {"pad": "p" * own_padding}},
                    *({"type": "view", "properties": {"n": n}} for n in range(4)),
                ],
                "metadata": "m" * filler,
            }
        )

    filler = BODY_SIZE - len(body(0))
    assert filler >= 0
    sized = body(filler)
    assert len(sized) == BODY_SIZE
    return sized


def _post(client: TestClient, content: bytes) -> Any:
    return client.post("/track", content=content, headers={"content-type": "application/json"})


def test_track_stores_a_call_at_its_byte_budget_and_refuses_one_byte_over(
    small_budget: TestClient,
) -> None:
    probe = assert_error_shape(_post(small_budget, _padded_call(12_000)), 413)
    over_by = probe["errors"][0]["stored_bytes"] - 20_000
    assert probe["errors"][0]["limit"] == 20_000
    assert 0 < over_by < 12_000
    at_limit = 12_000 - over_by

    answer = _post(small_budget, _padded_call(at_limit))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["events"]) == 5

    refused = assert_error_shape(_post(small_budget, _padded_call(at_limit + 1)), 413)
    assert refused["errors"] == [{"field": "events", "stored_bytes": 20_001, "limit": 20_000}]
    assert "20000" in refused["error"]
    assert len(all_events(small_budget, source_id="web")) == 5  # only the call at the limit


def test_track_takes_the_events_per_call_setting_and_refuses_one_more(
    small_budget: TestClient,
) -> None:
    def call(count: int) -> Any:
        events = [{"type": "view"} for _ in range(count)]
        return small_budget.post("/track", json={"source": {"id": "web"}, "events": events})

    assert call(5).status_code == 200
    refused = assert_error_shape(call(6), 422)
    assert refused["errors"] == [{"field": "events", "count": 6, "limit": 5}]
    assert len(all_events(small_budget, source_id="web")) == 5
    metrics = small_budget.get("/metrics").text
    assert 'eventstitch_events_rejected_total{reason="too_many_events"}' in metrics


def _database_bytes(config: Config) -> int:
    files = config.data_dir.glob("eventstitch.db*")
    return sum(Path(f).stat().st_size for f in files)


def test_call_copying_a_large_context_into_500_events_is_refused_and_stores_nothing(
    config: Config, default_budget: TestClient
) -> None:
    # 500 events sharing a 20 KB context would store about 10 MB from a 21 KB body.
    payload = {
        "source": {"id": "web"},
        "context": {"blob": "x" * 20_000},
        "events": [{"type": "view"} for _ in range(500)],
    }
    before = _database_bytes(config) if uses_sqlite_file(config) else 0

    refused = assert_error_shape(default_budget.post("/track", json=payload), 413)

    assert refused["errors"][0]["limit"] == 4 * 1024 * 1024
    assert refused["errors"][0]["stored_bytes"] > 500 * 20_000
    assert all_events(default_budget, source_id="web") == []
    if uses_sqlite_file(config):  # the refusal itself is kept, with its 21 KB body: no more
        assert _database_bytes(config) - before < 1024 * 1024
