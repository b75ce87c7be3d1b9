"""The per-process cache of what each segment gives a question (columnar/partials.py): asked
again, an answer reads only the segments it has not seen and the hot tail, with the same
numbers as computed in Python from the stored events, on both backends; the cache keeps at
most EVENTSTITCH_COLUMNAR_CACHE_ROWS groups; and merging per-segment numbers gives what one
pass over all the values gives."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.columnar import partials, segments
from eventstitch.config import Config
from eventstitch.ids import ms_to_iso, now_ms
from tests.columnar.test_segments import _rebuild, _setup
from tests.conftest import API_TOKEN, all_events

pytestmark = pytest.mark.postgres

QUERY = {"metric": "sum:properties.n", "by": "type", "source_id": "shop"}


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    partials.clear()
    yield
    partials.clear()


@pytest.fixture
def written(client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any) -> TestClient:
    """A client whose store holds ten hours of past events, written into segments."""
    _setup(client, config, tmp_path, monkeypatch)
    _rebuild()
    return client


def _ask(client: TestClient, **extra: str) -> dict[str, Any]:
    answer = client.get("/api/insights", params={**QUERY, **extra})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["engine"] == "columnar", body
    return body


def _expected(client: TestClient) -> dict[str, tuple[int, int]]:
    """Count and sum of `n` per type, from the stored events."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for event in all_events(client, source_id="shop"):
        found[event["type"]][0] += 1
        found[event["type"]][1] += event["properties"]["n"]
    return {kind: (count, total) for kind, (count, total) in found.items()}


def _numbers(body: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {row["type"]: (row["count"], row["value"]) for row in body["rows"]}


def test_asking_again_reads_only_new_segments_and_the_tail_with_the_same_numbers(
    written: TestClient,
) -> None:
    client = written
    first = _ask(client)
    assert first["segments"]["cached"] == 0
    # Ten hours of events: ten hour segments, or one day's in the hour after midnight UTC.
    assert first["segments"]["read"] >= 1
    assert _numbers(first) == _expected(client)

    again = _ask(client)
    assert again["segments"] == {"read": 0, "cached": first["segments"]["read"]}
    assert again["rows"] == first["rows"]

    assert client.post("/collect/charge/shop", json={"n": 1000}).status_code == 200
    with_tail = _ask(client)
    assert with_tail["segments"]["read"] == 0  # the event is in the hot tail, read from the store
    assert _numbers(with_tail) == _expected(client)
    assert _numbers(with_tail)["charge"][1] == _numbers(first)["charge"][1] + 1000

    another_question = _ask(client, metric="max:properties.n")  # not what was cached
    assert another_question["segments"]["cached"] == 0


def test_a_segment_past_the_checkpoint_read_is_never_kept_as_whole(written: TestClient) -> None:
    """A reader may list an hour that a rebuild has just published before it moves the
    checkpoint on (or a rebuild crashed between the two): that hour is read only up to the
    checkpoint read, the rest from the store, and must not be kept as if read whole."""
    client = written
    app = client.app
    assert isinstance(app, EventstitchApp)
    checkpoint = segments.folder(app.ctx) / segments.CHECKPOINT
    saved = checkpoint.read_text()
    last_end = max(segments.end_of(f) for f in segments.files(app.ctx))
    until = ms_to_iso(now_ms() + 3_600_000)
    expected = _expected(client)
    checkpoint.write_text(f"{last_end - 30 * 60_000}\n")
    assert _numbers(_ask(client, until=until)) == expected
    checkpoint.write_text(saved)
    again = _ask(client, until=until)
    assert _numbers(again) == expected
    assert again["segments"]["read"] >= 1  # the hour cut by the stale checkpoint


def test_a_range_with_no_segment_and_no_tail_answers_a_property_question(
    written: TestClient,
) -> None:
    client = written
    app = client.app
    assert isinstance(app, EventstitchApp)
    boundary = segments.checkpoint(app.ctx)
    assert boundary is not None
    quiet = _ask(client, since=ms_to_iso(boundary - 1))  # after every event, before the tail
    assert quiet["total"] == 0
    assert quiet["rows"] == []


def test_more_groups_than_allowed_are_cut_with_every_event_counted(
    written: TestClient, config: Config
) -> None:
    with _client_with_cache(dataclasses.replace(config, max_insight_groups=3), 1000) as few:
        for _ in range(2):  # the second time, straight to one statement
            body = _ask(few, by="properties.n")  # 300 distinct values
            assert body["truncated"] is True
            assert len(body["rows"]) == 3
            assert body["total"] == 300
            assert body["segments"]["cached"] == 0


def _client_with_cache(config: Config, rows: int) -> TestClient:
    app = EventstitchApp(dataclasses.replace(config, columnar_cache_rows=rows))
    test_client = TestClient(app, raise_server_exceptions=False)
    test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    return test_client


def test_the_cache_holds_at_most_its_budget_of_groups(written: TestClient, config: Config) -> None:
    client = written
    first = _ask(client)
    held = partials.held_rows()
    assert held > 0
    expected = _expected(client)
    for budget, all_cached in ((held, True), (held - 1, False), (0, False)):
        partials.clear()
        with _client_with_cache(config, budget) as limited:
            assert _numbers(_ask(limited)) == expected
            assert partials.held_rows() <= budget
            again = _ask(limited)
            assert _numbers(again) == expected
            segments = first["segments"]["read"]
            if all_cached:
                assert again["segments"] == {"read": 0, "cached": segments}
            else:
                assert again["segments"]["read"] > 0, budget
            if budget == 0:
                assert again["segments"]["cached"] == 0


def test_a_key_part_past_its_length_is_never_kept() -> None:
    at_limit = ("x" * partials.MAX_KEY_CHARS, 3)
    past_it = ("x" * (partials.MAX_KEY_CHARS + 1), 3)
    partials.store("segment-a", "question", (at_limit,), budget=10)
    assert partials.held_rows() == 1
    assert partials.lookup("segment-a", "question") == (at_limit,)
    partials.store("segment-b", "question", (at_limit, past_it), budget=10)
    assert partials.held_rows() == 1
    assert partials.lookup("segment-b", "question") is None


numbers = st.one_of(
    st.integers(-(2**40), 2**40), st.floats(-1e6, 1e6, allow_nan=False), st.just("text")
)


def _partial(values: list[Any], kind: str) -> tuple[Any, ...]:
    """One part's row as DuckDB gives it: count, present, integers, floats, then the integer
    and float aggregate (sum, min or max), None where there are none."""
    ints = [v for v in values if isinstance(v, int)]
    floats = [v for v in values if isinstance(v, float)]
    if kind in ("sum", "avg"):
        int_part = sum(ints) if ints else None
        float_part = math.fsum(floats) if floats else None
    else:
        pick = min if kind == "min" else max
        int_part = pick(ints) if ints else None
        float_part = pick(floats) if floats else None
    return ("key", len(values), len(values), len(ints), len(floats), int_part, float_part)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(numbers, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=5),
    kind=st.sampled_from(["sum", "avg", "min", "max"]),
)
def test_merged_parts_equal_one_pass_over_all_values(
    values: list[Any], cuts: list[int], kind: str
) -> None:
    bounds = sorted({0, len(values), *(min(c, len(values)) for c in cuts)})
    parts = [values[a:b] for a, b in itertools.pairwise(bounds)]
    merged: dict[tuple[Any, ...], list[Any]] = {}
    partials.merge(kind, 1, [_partial(p, kind) for p in parts], merged)
    whole = _partial(values, kind)
    if not values:
        assert merged == {}
        return
    got = partials.values(kind, merged[("key",)])
    assert merged[("key",)][0] == whole[1]
    assert got[:4] == whole[2:6]  # counts, and the integer aggregate exactly
    if whole[6] is None:
        assert got[4] is None
    elif kind in ("sum", "avg"):
        assert math.isclose(got[4], whole[6], rel_tol=1e-12, abs_tol=1e-9)
    else:
        assert got[4] == whole[6]
