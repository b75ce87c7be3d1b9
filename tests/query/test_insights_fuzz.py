"""Property: `/api/insights` answers the numbers computed here in Python from the stored events
(`GET /api/events`), on SQLite and on PostgreSQL alike. Events have a few types, two sources and
numeric, string and nested properties; queries draw a metric, dimensions and filters."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.query.insight_rows import percentile
from tests.conftest import all_events, create_source
from tests.pg import require_postgres, server_url
from tests.query.test_property_keys_fuzz import clients

pytestmark = pytest.mark.postgres
__all__ = ["clients"]  # the module-scoped pair of apps, shared

amounts = st.one_of(
    st.integers(-50, 50),
    st.sampled_from([0.5, 2.25, -1.75, 1e3]),
    st.sampled_from(["7", "", None, True]),
)
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["order", "refund", "ping"]),
        "source": st.sampled_from([0, 1]),
        "amount": amounts | st.just("missing"),
        "plan": st.sampled_from(["free", "pro", None]),
        "meta": st.fixed_dictionaries({"host": st.sampled_from(["a", "b", "c"])}),
    }
)
NUMERIC = ("sum", "avg", "min", "max", "p50", "p90", "p95", "p99")
metrics = st.sampled_from(
    ["count", "count_distinct:properties.plan", "count_distinct:source_id"]
    + [f"{m}:properties.amount" for m in NUMERIC]
)
dimensions = st.lists(
    st.sampled_from(["type", "source", "properties.plan", "properties.meta.host", "hour"]),
    max_size=3,
    unique=True,
)
comparisons = st.lists(
    st.sampled_from(
        [
            ("properties.amount[gt]", "0"),
            ("properties.amount[lt]", "10"),
            ("properties.plan[in]", "pro,free"),
            ("properties.amount[exists]", "true"),
            ("properties.plan", "pro"),
        ]
    ),
    max_size=2,
    unique=True,
)
_runs = itertools.count()


def numbers_of(value: Any) -> list[float]:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def passes(event: dict[str, Any], name: str, value: str) -> bool:
    """The documented comparison rules, written apart from the code."""
    props = event["properties"]
    path = name.split("[")[0].removeprefix("properties.")
    present = path in props
    stored = props.get(path)
    if name.endswith("[gt]"):
        return any(n > float(value) for n in numbers_of(stored))
    if name.endswith("[lt]"):
        return any(n < float(value) for n in numbers_of(stored))
    if name.endswith("[in]"):
        return isinstance(stored, str) and stored in value.split(",")
    if name.endswith("[exists]"):
        return present
    return stored == value


def key_of(event: dict[str, Any], dim: str) -> Any:
    if dim == "type":
        return event["type"]
    if dim == "source":
        return event["source_id"]
    if dim == "hour":
        at = datetime.fromisoformat(event["received_at"]).astimezone(UTC)
        return at.replace(minute=0, second=0, microsecond=0).isoformat(timespec="seconds")
    node = event["properties"]
    for key in dim.removeprefix("properties.").split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def expected_value(metric: str, group: list[dict[str, Any]]) -> Any:
    if metric == "count":
        return len(group)
    if metric == "count_distinct:source_id":
        return len({e["source_id"] for e in group})
    if metric == "count_distinct:properties.plan":
        return len({e["properties"].get("plan") for e in group} - {None})
    found = [e["properties"]["amount"] for e in group if "amount" in e["properties"]]
    numbers = sorted(n for v in found for n in numbers_of(v))
    if not numbers:
        return None
    kind = metric.split(":")[0]
    if kind in ("sum", "avg"):
        return math.fsum(numbers) / (len(numbers) if kind == "avg" else 1)
    if kind in ("min", "max"):
        return numbers[0] if kind == "min" else numbers[-1]
    rank = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}[kind] * (len(numbers) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(numbers) - 1)
    return numbers[low] + (numbers[high] - numbers[low]) * (rank - low)


def close(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    stored=st.lists(events, min_size=0, max_size=12),
    metric=metrics,
    by=dimensions,
    filters=comparisons,
)
def test_insights_equal_python_over_the_stored_events_on_both_backends(
    clients: dict[str, TestClient],
    stored: list[dict[str, Any]],
    metric: str,
    by: list[str],
    filters: list[tuple[str, str]],
) -> None:
    run = next(_runs)
    sources = [f"fz{run}a", f"fz{run}b"]
    answers = {}
    for name, client in clients.items():
        for source in sources:
            create_source(client, id=source)
        for event in stored:
            body = {k: event[k] for k in ("plan", "meta")}
            if event["amount"] != "missing":
                body["amount"] = event["amount"]
            url = f"/collect/{event['type']}/{sources[event['source']]}"
            assert client.post(url, json=body).status_code == 200
        params: list[tuple[str, str]] = [("source_id", s) for s in sources]
        params += [("metric", metric), ("by", ",".join(by)), *filters]
        answer = client.get("/api/insights", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        kept = [
            e
            for e in all_events(client, source_id=sources)
            if all(passes(e, n, v) for n, v in filters)
        ]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for event in kept:
            groups[tuple(key_of(event, d) for d in by)].append(event)
        got = {tuple(row[d] for d in by): row for row in body["rows"]}
        assert body["total"] == len(kept)
        for key, group in groups.items():
            assert got[key]["count"] == len(group), (name, key)
            assert close(got[key]["value"], expected_value(metric, group)), (name, key, metric)
        empty = {k for k, row in got.items() if row["count"] == 0}
        assert set(got) - empty == set(groups), name  # only series intervals are extra
        answers[name] = body["rows"]
    if "hour" in by:
        return  # the two stores may have received their events in different hours
    assert len(answers["sqlite"]) == len(answers["postgres"])
    for left, right in zip(answers["sqlite"], answers["postgres"], strict=True):
        assert left.keys() == right.keys()
        assert all(close(left[k], right[k]) for k in left), (left, right)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(-1000, 1000) | st.floats(-1e6, 1e6), min_size=1, max_size=30),
    fraction=st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_percentile_is_postgresql_percentile_cont(values: list[float], fraction: float) -> None:
    """The method SQLite-backed answers use is the one PostgreSQL computes in SQL."""
    require_postgres()
    with psycopg.connect(server_url()) as conn:
        row = conn.execute(
            "SELECT percentile_cont(%s) WITHIN GROUP (ORDER BY v) FROM unnest(%s::float8[]) AS v",
            [fraction, [float(v) for v in values]],
        ).fetchone()
    assert row is not None
    assert math.isclose(percentile(sorted(values), fraction), row[0], rel_tol=1e-9, abs_tol=1e-6)
