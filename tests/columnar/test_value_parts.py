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
from types import SimpleNamespace
from typing import Any

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.columnar import parquet, partials, value_parts
from eventstitch.columnar import query as columnar_query
from eventstitch.config import Config
from eventstitch.ids import ms_to_iso, now_ms
from eventstitch.query.insight_params import PERCENTILES
from eventstitch.query.insight_rows import percentile
from tests.columnar.test_segments import _import, _rebuild, _setup, past_event
from tests.conftest import API_TOKEN, all_events, create_source

pytestmark = pytest.mark.postgres

HOUR = 3_600_000
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


def _ask(client: TestClient, metric: str, **extra: str) -> dict[str, Any]:
    params = {"metric": metric, "by": "type", "source_id": "shop", **extra}
    answer = client.get("/api/insights", params=params)
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


def _hours(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any, values: dict[int, list]
) -> int:
    """Events of `shop` holding `n`, in the hours so many hours ago, written into segments;
    the start of the current hour."""
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    if config.database_url:
        monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)
    create_source(client, id="shop")
    start = now_ms() // HOUR * HOUR
    events = [
        past_event(start - ago * HOUR + 60_000 * (at + 1), ago * 100 + at, "charge", {"n": n})
        for ago, numbers in values.items()
        for at, n in enumerate(numbers)
    ]
    _import(tmp_path, events)
    _rebuild()
    return start


def test_percentiles_are_those_of_one_statement_to_the_last_bit(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """Where interpolating as `lo + (hi - lo) * d` differs from DuckDB's own: in the last
    bit (a third and three), and where it is not a number at all (-1e308 and 1e308)."""
    hours = {3: [1 / 3, 3.0], 2: [-1e308, -1e308, 1e308]}
    start = _hours(client, config, tmp_path, monkeypatch, hours)
    for ago, metric in ((3, "p50:properties.n"), (2, "p50:properties.n"), (2, "p90:properties.n")):
        since, until = ms_to_iso(start - ago * HOUR), ms_to_iso(start - (ago - 1) * HOUR)
        with _client(config, columnar_cache_values_mb=0) as keeping_none:
            one_statement = _ask(keeping_none, metric, since=since, until=until)
        merged = _ask(client, metric, since=since, until=until)
        again = _ask(client, metric, since=since, until=until)
        assert again["segments"]["cached"] == 1
        assert merged["rows"] == again["rows"] == one_statement["rows"], (ago, metric)
        assert one_statement["rows"][0]["value"] is not None


@pytest.mark.parametrize("metric", [*METRICS, "sum:properties.n"])
def test_a_kept_segment_with_a_column_the_segments_read_lack(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any, metric: str
) -> None:
    """Three hours ago only floats (no column of integers), two hours ago only integers:
    asked again over a range that cuts the first, the segment read has no column of integers,
    and the statement must not ask it for one (it was a 500)."""
    start = _hours(client, config, tmp_path, monkeypatch, {3: [0.5, 1.5, 2.5], 2: [1, 2, 3]})
    assert _ask(client, metric)["segments"]["read"] >= 2
    since = ms_to_iso(start - 3 * HOUR + 90_000)
    cut = _ask(client, metric, since=since)
    assert cut["segments"]["cached"] >= 1
    with _client(config, columnar_cache_values_mb=0, columnar_cache_rows=0) as keeping_none:
        assert cut["rows"] == _ask(keeping_none, metric, since=since)["rows"]


def test_a_question_is_kept_after_the_texts_table_started_afresh_meanwhile(
    written: TestClient, monkeypatch: Any
) -> None:
    """Another answer starts the table afresh while this one looks up its texts: this one
    comes from one statement, and the question is still kept the next time."""
    intern = value_parts.intern
    calls: list[int] = []

    def racing(texts: Any, expected: int, budget: int) -> Any:
        if not calls:
            value_parts.clear()
        calls.append(1)
        return intern(texts, expected, budget)

    monkeypatch.setattr(value_parts, "intern", racing)
    metric = "count_distinct:properties.n"
    expected = _expected(written, metric)
    for _ in range(2):
        assert _numbers(_ask(written, metric)) == expected
    third = _ask(written, metric)
    assert third["segments"]["read"] == 0
    assert _numbers(third) == expected


def test_a_segment_is_kept_within_its_budget_and_not_past_it() -> None:
    rows = (("charge", 3, 3, 3, 0, np.array([1.0, 2.0, 3.0])),)
    size = rows[0][-1].nbytes + value_parts.GROUP_OVERHEAD + len("charge")
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
    first, second, again = ids.tolist()
    assert first == again != second  # one id a text, dense from 0
    assert {first, second} == {0, 1}
    assert value_parts.held_bytes() > 2 * cost
    assert value_parts.intern(["z" * 10], generation, budget) is None  # a third text
    assert value_parts.generation() == generation + 1
    assert value_parts.held_bytes() == 0
    assert value_parts.CACHE.lookup("segment-a", "question") is None
    # Ids of the old table are never handed out against the new one.
    with pytest.raises(value_parts.Stale):
        value_parts.intern([text], generation, budget)
    assert value_parts.intern(["z" * 10], generation + 1, budget) == np.array([0])


def test_texts_interned_trim_the_arrays_kept_to_the_budget() -> None:
    """Texts of a hot tail or a cut segment are interned without anything stored: the arrays
    kept make room for them."""
    budget = 100_000
    numbers = np.zeros(11_000, dtype=np.float64)  # 88 000 bytes
    value_parts.store("segment-a", "question", (("charge", 1, 1, 1, 0, numbers),), budget)
    assert value_parts.CACHE.lookup("segment-a", "question") is not None
    texts = [f"{i:040d}" for i in range(300)]  # 42 000 bytes: under half the budget
    assert value_parts.intern(texts, value_parts.generation(), budget) is not None
    assert value_parts.held_bytes() <= budget
    assert value_parts.CACHE.lookup("segment-a", "question") is None


def test_a_key_past_its_length_is_never_kept_and_a_kept_key_is_counted() -> None:
    at_limit = "x" * partials.MAX_KEY_CHARS
    ids = np.array([1], np.int32)
    value_parts.store("segment-a", "question", ((at_limit, 1, ids),), 10**6)
    assert value_parts.CACHE.lookup("segment-a", "question") is not None
    assert value_parts.held_bytes() == ids.nbytes + value_parts.GROUP_OVERHEAD + len(at_limit)
    value_parts.store("segment-b", "question", ((at_limit + "x", 1, ids),), 10**6)
    assert value_parts.CACHE.lookup("segment-b", "question") is None


numbers = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([1 / 3, 0.1, -1e308, 1e308, 2.0**53 + 1]),
)


@pytest.fixture(scope="module")
def duckdb_alone() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> parquet.Limits:
    return parquet.Limits(memory_mb=64, spill_dir=tmp_path_factory.mktemp("spill"), spill_mb=64)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(numbers, min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    kind=st.sampled_from(sorted(PERCENTILES)),
)
def test_a_percentile_of_parts_is_what_duckdb_gives_over_all_their_numbers(
    duckdb_alone: duckdb.DuckDBPyConnection,
    limits: parquet.Limits,
    values: list[Any],
    cuts: list[int],
    kind: str,
) -> None:
    """Exactly, to the last bit: DuckDB's interpolation may be rounded once (a fused
    multiply-add), and at a whole rank it takes the number as it is (`lo + (hi - lo) * 0` of
    -1e308 and 1e308 is not a number)."""
    doubles = [float(v) for v in values]  # as DuckDB reads numbers for a percentile
    bounds = sorted({0, len(doubles), *(min(c, len(doubles)) for c in cuts)})
    parts = [np.array(doubles[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    fraction = PERCENTILES[kind]
    merged: dict[tuple[Any, ...], list[Any]] = {("k",): [0, 0, 0, 0, parts]}
    asked = SimpleNamespace(max_groups=10, limits=limits)
    columnar_query._percentiles(merged, fraction, asked)  # type: ignore[arg-type]
    expected = duckdb_alone.execute(
        f"SELECT quantile_cont(x, {fraction!r}) FROM (SELECT unnest(?::DOUBLE[]) AS x)", [doubles]
    ).fetchone()
    assert expected is not None
    assert merged[("k",)][5] == expected[0]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sets(st.integers(0, 60)), max_size=6))
def test_distinct_ids_of_parts_are_those_of_their_union(parts: list[set[int]]) -> None:
    flags = value_parts.Flags()
    arrays = [np.array(sorted(p), dtype=np.int32) for p in parts if p]
    for _ in range(2):  # the flags are cleared after each group
        assert flags.distinct(arrays) == len(set().union(*parts))
