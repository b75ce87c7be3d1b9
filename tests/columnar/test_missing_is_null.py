"""A property's missing value and its JSON null are one group, `null`, as the scan groups
them, whichever way the segments answer: one statement, each segment's groups merged (counts,
sums), each segment's values merged (percentiles, distinct counts), first asked and asked
again. In each hour some events lack the property and some hold null, so one segment gives
both kinds of rows for the same key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.columnar import partials
from eventstitch.config import Config
from eventstitch.ids import now_ms
from tests.columnar.test_segments import _import, _rebuild, past_event
from tests.columnar.test_value_parts import _client, _empty_caches
from tests.conftest import create_source

pytestmark = pytest.mark.postgres
__all__ = ["_empty_caches"]  # the autouse fixture that empties the caches, shared

HOUR = 3_600_000
PLANS: list[Any] = ["pro", None, "missing", "pro", "free", None, "missing", "missing"]


def _store_plans(client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any) -> None:
    """Three past hours of the events of PLANS (`n` their place, 1-8), written into segments."""
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    if config.database_url:
        monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)
    create_source(client, id="shop")
    start = now_ms() // HOUR * HOUR - 5 * HOUR
    events = []
    for hour in range(3):
        for place, plan in enumerate(PLANS, start=1):
            properties: dict[str, Any] = {"n": place}
            if plan != "missing":
                properties["plan"] = plan
            at = start + hour * HOUR + place * 1000
            events.append(past_event(at, hour * 100 + place, "order", properties))
    _import(tmp_path, events)
    _rebuild()


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        # Each of 3 hours: `n` 1-8, pro at 1 and 4, null at 2 and 6, missing at 3, 7 and 8.
        ("count", {"pro": 6, None: 15, "free": 3}),
        ("sum:properties.n", {"pro": 15, None: 78, "free": 15}),
        ("max:properties.n", {"pro": 4, None: 8, "free": 5}),
        ("p50:properties.n", {"pro": 2.5, None: 6.0, "free": 5.0}),
        ("count_distinct:properties.n", {"pro": 2, None: 5, "free": 1}),
    ],
)
def test_missing_and_null_are_one_group_however_the_segments_answer(
    client: TestClient,
    config: Config,
    tmp_path: Path,
    monkeypatch: Any,
    metric: str,
    expected: dict[Any, Any],
) -> None:
    _store_plans(client, config, tmp_path, monkeypatch)
    params = {"metric": metric, "by": "properties.plan", "source_id": "shop"}
    answers = []
    for way in ("one statement", "each segment", "each segment kept"):
        with monkeypatch.context() as patched:
            if way == "one statement":  # as for a question too large to keep
                patched.setattr(partials, "overflows", lambda shape: True)
            answer = client.get("/api/insights", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["engine"] == "columnar", body
        answers.append(body)
    for body in answers:
        got = {row["properties.plan"]: row["value"] for row in body["rows"]}
        assert got == expected, (metric, body["segments"])
    assert answers[2]["segments"]["read"] == 0  # the last from what was kept


@pytest.mark.parametrize(("max_groups", "kept"), [(3, True), (2, False)])
def test_missing_and_null_count_once_against_the_group_limit(
    client: TestClient,
    config: Config,
    tmp_path: Path,
    monkeypatch: Any,
    max_groups: int,
    kept: bool,
) -> None:
    """pro, null (missing and null in every segment) and free: 3 groups. At a limit of 3 each
    segment's groups are kept, one past it (2) the answer is cut and one statement answers."""
    _store_plans(client, config, tmp_path, monkeypatch)
    params = {"metric": "count", "by": "properties.plan", "source_id": "shop"}
    with _client(config, max_insight_groups=max_groups) as limited:
        first = limited.get("/api/insights", params=params).json()
        again = limited.get("/api/insights", params=params).json()
    assert first["engine"] == again["engine"] == "columnar"
    assert first["truncated"] is (not kept)
    assert again["segments"]["read"] == (0 if kept else first["segments"]["read"])
    if kept:
        got = {row["properties.plan"]: row["count"] for row in again["rows"]}
        assert got == {"pro": 6, None: 15, "free": 3}
