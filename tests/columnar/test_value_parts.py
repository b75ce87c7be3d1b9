"""What each segment gives a percentile or a distinct count, kept per process
(columnar/value_parts.py): asked again, an answer reads only the segments it has not seen and
the hot tail, with the numbers computed in Python from the stored events, on both backends;
what is kept stays under EVENTSTITCH_COLUMNAR_CACHE_VALUES_MB, what one answer brings over under
EVENTSTITCH_MAX_INSIGHT_VALUES; and merging per-segment numbers or ids gives what one pass over
all the values gives."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.columnar import partials, value_parts
from eventstitch.config import Config
from eventstitch.query.insight_params import PERCENTILES
from eventstitch.query.insight_rows import percentile
from tests.columnar.test_segments import _rebuild, _setup
from tests.conftest import API_TOKEN, all_events

pytestmark = pytest.mark.postgres

METRICS = ["p95:properties.n", "p50:properties.n", "count_distinct:properties.n"]


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    partials.clear()
    value_parts.clear()
    yield
    partials.clear()
    value_parts.clear()


@pytest.fixture
def written(client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any) -> TestClient:
    """A client whose store holds ten hours of past events (`n` from 0 to 299), written into
    segments."""
    _setup(client, config, tmp_path, monkeypatch)
    _rebuild()
    return client


def _ask(client: TestClient, metric: str) -> dict[str, Any]:
    answer = client.get(
        "/api/insights", params={"metric": metric, "by": "type", "source_id": "shop"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["engine"] == "columnar", body
    return body


def _expected(client: TestClient, metric: str) -> dict[str, tuple[int, Any]]:
    """Count and metric of `n` per type, from the stored events."""
    found: dict[str, list[int]] = defaultdict(list)
    for event in all_events(client, source_id="shop"):
        found[event["type"]].append(event["properties"]["n"])
    kind = metric.split(":")[0]
    if kind == "count_distinct":
        return {t: (len(ns), len(set(ns))) for t, ns in found.items()}
    return {t: (len(ns), percentile(sorted(ns), PERCENTILES[kind])) for t, ns in found.items()}


def _numbers(body: dict[str, Any]) -> dict[str, tuple[int, Any]]:
    return {row["type"]: (row["count"], row["value"]) for row in body["rows"]}


@pytest.mark.parametrize("metric", METRICS)
def test_asking_again_reads_only_the_tail_with_the_same_numbers(
    written: TestClient, metric: str
) -> None:
    client = written
    first = _ask(client, metric)
    assert first["segments"]["cached"] == 0
    assert _numbers(first) == _expected(client, metric)
    assert value_parts.held_bytes() > 0

    again = _ask(client, metric)
    assert again["segments"] == {"read": 0, "cached": first["segments"]["read"]}
    assert again["rows"] == first["rows"]

    # Values the segments hold already, and new ones: a distinct count takes each once.
    for n in (0, 1, 1, 5000):
        assert client.post("/collect/charge/shop", json={"n": n}).status_code == 200
    with_tail = _ask(client, metric)
    assert with_tail["segments"]["read"] == 0
    assert with_tail["tail"]["events"] == 4
    assert _numbers(with_tail) == _expected(client, metric)
    assert _numbers(with_tail) != _numbers(first)


def _client(config: Config, **settings: Any) -> TestClient:
    app = EventstitchApp(dataclasses.replace(config, **settings))
    test_client = TestClient(app, raise_server_exceptions=False)
    test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    return test_client


@pytest.mark.parametrize("metric", METRICS)
def test_an_answer_brings_over_at_most_max_insight_values(
    written: TestClient, config: Config, metric: str
) -> None:
    """300 events, each with a number `n`: at 300 values the lists come over and are kept; at
    299 none do, one statement answers every time, and the numbers are the same."""
    expected = _expected(written, metric)
    for limit, kept in ((300, True), (299, False)):
        partials.clear()
        value_parts.clear()
        with _client(config, max_insight_values=limit) as limited:
            first = _ask(limited, metric)
            again = _ask(limited, metric)
        assert _numbers(first) == _numbers(again) == expected, limit
        assert (again["segments"]["cached"] > 0) is kept, limit
        assert (value_parts.held_bytes() > 0) is kept, limit


def test_none_is_kept_with_a_budget_of_zero(written: TestClient, config: Config) -> None:
    with _client(config, columnar_cache_values_mb=0) as keeping_none:
        for _ in range(2):
            body = _ask(keeping_none, "p95:properties.n")
            assert body["segments"]["cached"] == 0
            assert _numbers(body) == _expected(written, "p95:properties.n")
    assert value_parts.held_bytes() == 0


def test_a_segment_is_kept_within_its_budget_and_not_past_it() -> None:
    rows = (("charge", 3, 3, 3, 0, np.array([1.0, 2.0, 3.0])),)
    size = rows[0][-1].nbytes + value_parts.GROUP_OVERHEAD
    value_parts.store("segment-a", "question", rows, budget=size)
    assert value_parts.CACHE.lookup("segment-a", "question") == rows
    assert value_parts.held_bytes() == size
    value_parts.store("segment-b", "question", rows, budget=size - 1)
    assert value_parts.CACHE.lookup("segment-b", "question") is None


def test_texts_past_half_the_budget_start_a_new_table_and_drop_what_was_kept() -> None:
    text = "x" * 10
    cost = len(text) + value_parts.TEXT_OVERHEAD
    budget = 2 * 2 * cost  # half of it holds two texts
    generation = value_parts.generation()
    value_parts.store("segment-a", "question", (("k", 1, np.array([0], np.int32)),), 10**6)
    ids = value_parts.intern([text, "y" * 10, text], generation, budget)
    assert ids is not None
    assert ids.tolist() == [0, 1, 0]
    assert value_parts.held_bytes() > 2 * cost
    assert value_parts.intern(["z" * 10], generation, budget) is None  # a third text
    assert value_parts.generation() == generation + 1
    assert value_parts.held_bytes() == 0
    assert value_parts.CACHE.lookup("segment-a", "question") is None
    # Ids of the old table are never handed out against the new one.
    assert value_parts.intern([text], generation, budget) is None
    assert value_parts.intern(["z" * 10], generation + 1, budget) == np.array([0])


numbers = st.one_of(st.integers(-(2**40), 2**40), st.floats(-1e6, 1e6, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(numbers, min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    kind=st.sampled_from(sorted(PERCENTILES)),
)
def test_a_percentile_of_parts_is_that_of_all_their_numbers(
    values: list[Any], cuts: list[int], kind: str
) -> None:
    doubles = [float(v) for v in values]  # as DuckDB reads numbers for a percentile
    bounds = sorted({0, len(doubles), *(min(c, len(doubles)) for c in cuts)})
    parts = [np.array(doubles[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    fraction = PERCENTILES[kind]
    assert value_parts.percentile(parts, fraction) == percentile(sorted(doubles), fraction)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sets(st.integers(0, 60)), max_size=6))
def test_distinct_ids_of_parts_are_those_of_their_union(parts: list[set[int]]) -> None:
    flags = value_parts.Flags()
    arrays = [np.array(sorted(p), dtype=np.int32) for p in parts if p]
    for _ in range(2):  # the flags are cleared after each group
        assert flags.distinct(arrays) == len(set().union(*parts))
