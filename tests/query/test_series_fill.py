"""A series by a time bucket and another dimension has every interval for every value of that
dimension, and only those: a value with events in every interval, one with gaps and one with
a single event, answered by the rollup (bare counts) and by the other engines (groups), on
SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.ids import ms_to_iso, now_ms
from tests.columnar.test_segments import past_event
from tests.conftest import create_source
from tests.query.test_property_keys_fuzz import clients

pytestmark = pytest.mark.postgres
__all__ = ["clients"]  # the module-scoped pair of apps, shared

HOUR = 3_600_000
_runs = itertools.count()
# Hours before the current one that each type has events in (one event each, two at 2).
HOURS_OF = {"beat": [6, 5, 4, 3, 2, 1], "spike": [5, 2, 2], "once": [6]}


def label(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def expected_rows(this_hour: int, hours_ago: range, by: list[str]) -> list[dict[str, Any]]:
    """Every (type, hour) of the range with its count, in the answer's order: time first
    where it comes first, then names in code point order."""
    rows = []
    for kind in sorted(HOURS_OF):
        for ago in hours_ago:
            n = HOURS_OF[kind].count(ago)
            rows.append({"type": kind, "hour": label(this_hour - ago * HOUR), "count": n})
    return sorted(rows, key=lambda r: tuple(r[d] for d in by))


@pytest.mark.parametrize("by", [["type", "hour"], ["hour", "type"]])
@pytest.mark.parametrize("metric", ["count", "sum:properties.n"])
@pytest.mark.parametrize("bounded", [False, True])
def test_each_type_has_every_interval_of_the_series(
    clients: dict[str, TestClient], by: list[str], metric: str, bounded: bool
) -> None:
    run = next(_runs)
    this_hour = now_ms() // HOUR * HOUR
    for name, client in clients.items():
        source = f"fill{run}"
        create_source(client, id=source)
        events = [
            past_event(this_hour - ago * HOUR + 60_000 * i, run * 100 + i, kind, {"n": 1}, source)
            for i, (kind, ago) in enumerate(
                (kind, ago) for kind, hours in HOURS_OF.items() for ago in hours
            )
        ]
        app = client.app
        assert isinstance(app, EventstitchApp)
        assert client.portal is not None
        assert client.portal.call(app.ctx.storage.events.import_batch, events) == len(events)
        params = {"source_id": source, "metric": metric, "by": ",".join(by)}
        hours_ago = range(6, 0, -1)  # without bounds: from the first interval found to the last
        if bounded:
            params |= {"since": ms_to_iso(this_hour - 8 * HOUR), "until": ms_to_iso(this_hour)}
            hours_ago = range(8, 0, -1)
        answer = client.get("/api/insights", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if metric == "count":
            assert body["engine"] == "rollup", name
        assert body["total"] == len(events)
        got = [{d: row[d] for d in by} | {"count": row["count"]} for row in body["rows"]]
        expected = expected_rows(this_hour, hours_ago, by)
        assert got == [{d: row[d] for d in by} | {"count": row["count"]} for row in expected]
        values = [row["value"] for row in body["rows"]]
        if metric == "count":
            assert values == [row["count"] for row in expected], name
        else:  # a sum over no numbers is null
            assert values == [row["count"] or None for row in expected], name
