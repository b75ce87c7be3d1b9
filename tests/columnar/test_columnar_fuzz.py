"""Property: with insight segments written, `/api/insights` answers from them (engine
`columnar`) the numbers computed here in Python from the stored events, for every metric,
property dimension, time bucket (in a time zone too) and filter, on SQLite and on PostgreSQL.
Events fall in past hours and days (in segments) and now (the hot tail, read from the store);
a path that went through an array in some segment is answered by the scan, with the same
numbers."""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
from collections import defaultdict
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.columnar import segments
from eventstitch.columnar.lock import writer_lock
from eventstitch.ids import now_ms
from tests.columnar.test_segments import past_event
from tests.conftest import all_events, create_source
from tests.query.test_insights_fuzz import (
    amounts,
    close,
    comparisons,
    expected_value,
    metrics,
    passes,
)
from tests.query.test_property_keys_fuzz import clients

pytestmark = pytest.mark.postgres
__all__ = ["clients"]  # the module-scoped pair of apps, shared

HOUR = 3_600_000
PARIS = ZoneInfo("Europe/Paris")
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["order", "refund", "ping"]),
        "source": st.sampled_from([0, 1]),
        "amount": amounts | st.just("missing"),
        "plan": st.sampled_from(["free", "pro", None]),
        "meta": st.fixed_dictionaries({"host": st.sampled_from(["a", "b", "c"])})
        | st.sampled_from(["plain", [{"host": "a"}]]),
        "hours_ago": st.sampled_from([0, -1, 1, 2, 3, 30]),  # -1: minutes ago
    }
)
dimensions = st.lists(
    st.sampled_from(
        ["type", "source", "properties.plan", "properties.meta.host", "properties.amount", "hour"]
    ),
    max_size=3,
    unique=True,
)
_runs = itertools.count()


def _key(event: dict[str, Any], dim: str, tz: tzinfo) -> Any:
    if dim == "type":
        return event["type"]
    if dim == "source":
        return event["source_id"]
    at = datetime.fromisoformat(event["received_at"])
    if dim == "hour":
        return at.astimezone(tz).replace(minute=0, second=0, microsecond=0).isoformat()
    if dim == "day":
        midnight = datetime(*at.astimezone(tz).timetuple()[:3], tzinfo=tz)
        return midnight.isoformat()
    node = event["properties"]
    for key in dim.removeprefix("properties.").split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _store(client: TestClient, stored: list[dict[str, Any]], sources: list[str], run: int) -> None:
    """Past events imported with their receipt times; events of now posted to /collect."""
    app = client.app
    assert isinstance(app, EventstitchApp)
    this_hour = now_ms() // HOUR * HOUR
    rng = random.Random(run)
    past = []
    for n, event in enumerate(stored):
        body = {k: event[k] for k in ("plan", "meta")}
        if event["amount"] != "missing":
            body["amount"] = event["amount"]
        if event["hours_ago"] == 0:
            url = f"/collect/{event['type']}/{sources[event['source']]}"
            assert client.post(url, json=body).status_code == 200
            continue
        if event["hours_ago"] == -1:  # sealed minutes of the open hour (a part), or the tail
            at = now_ms() - 90_000 - rng.randrange(600_000)
        else:
            at = this_hour - event["hours_ago"] * HOUR + rng.randrange(HOUR)
        past.append(
            past_event(at, run * 1000 + n, event["type"], body, source=sources[event["source"]])
        )

    async def write() -> None:
        if past:
            await app.ctx.storage.events.import_batch(past)
        where = segments.folder(app.ctx)
        while True:  # the folder's lock, as `insights rebuild`: the app's refresher may run too
            with writer_lock(where, wait=False) as held:  # (waiting would block its loop)
                if held is not None:
                    await segments.rebuild(ctx=app.ctx, from_scratch=True)
                    return
            await asyncio.sleep(0.05)

    assert client.portal is not None
    client.portal.call(write)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    stored=st.lists(events, min_size=1, max_size=14),
    metric=metrics,
    by=dimensions,
    filters=comparisons,
    in_paris=st.booleans(),
    day=st.booleans(),
)
def test_columnar_answers_equal_python_over_the_stored_events_on_both_backends(
    clients: dict[str, TestClient],
    stored: list[dict[str, Any]],
    metric: str,
    by: list[str],
    filters: list[tuple[str, str]],
    in_paris: bool,
    day: bool,
) -> None:
    run = next(_runs)
    sources = [f"cz{run}a", f"cz{run}b"]
    by = [("day" if day else "hour") if d == "hour" else d for d in by]
    tz = PARIS if in_paris else UTC
    for name, client in clients.items():
        for source in sources:
            create_source(client, id=source)
        _store(client, stored, sources, run)
        params: list[tuple[str, str]] = [("source_id", s) for s in sources]
        params += [("metric", metric), ("by", ",".join(by)), *filters]
        if in_paris:
            params.append(("tz", "Europe/Paris"))
        kept = [
            e
            for e in all_events(client, source_id=sources)
            if all(passes(e, n, v) for n, v in filters)
        ]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for event in kept:
            groups[tuple(_key(event, d, tz) for d in by)].append(event)
        for asked in ("first", "again"):  # again: from what each segment gave the first time
            answer = client.get("/api/insights", params=params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            if "properties.meta.host" not in by:  # where `meta` held a list, segments cannot say
                assert body["engine"] in ("columnar", "rollup"), (name, body)
            got = {tuple(row[d] for d in by): row for row in body["rows"]}
            assert body["total"] == len(kept), (name, asked)
            for key, group in groups.items():
                assert got[key]["count"] == len(group), (name, asked, key)
                expected = expected_value(metric, group)
                assert close(got[key]["value"], expected), (name, asked, key, metric)
            empty = {k for k, row in got.items() if row["count"] == 0}
            assert set(got) - empty == set(groups), name  # only series intervals are extra


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    stored=st.lists(events, min_size=1, max_size=14),
    metric=metrics,
    first=st.sampled_from(["properties.plan", "properties.amount"]),
    top=st.integers(1, 3),
)
def test_columnar_top_folds_the_rest_as_the_scan_does(
    clients: dict[str, TestClient],
    stored: list[dict[str, Any]],
    metric: str,
    first: str,
    top: int,
) -> None:
    run = next(_runs)
    sources = [f"cz{run}a", f"cz{run}b"]
    for name, client in clients.items():
        for source in sources:
            create_source(client, id=source)
        _store(client, stored, sources, run)
        params = [("source_id", s) for s in sources]
        params += [("metric", metric), ("by", f"{first},hour"), ("top", str(top))]
        columnar = client.get("/api/insights", params=params).json()
        app = client.app
        assert isinstance(app, EventstitchApp)
        folder = segments.folder(app.ctx)
        aside = folder.with_name("segments-aside")
        shutil.move(folder, aside)
        try:
            scanned = client.get("/api/insights", params=params).json()
        finally:
            shutil.move(aside, folder)
        assert (columnar["engine"], scanned["engine"]) == ("columnar", "scan"), name
        assert len(columnar["rows"]) == len(scanned["rows"]), name
        for left, right in zip(columnar["rows"], scanned["rows"], strict=True):
            assert left.keys() == right.keys(), name
            assert all(close(left[k], right[k]) for k in left), (name, left, right)
