"""`eventstitch events` and `eventstitch insights`: reading back what HTTP stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.cli.conftest import fails, ok, ok_json

HOUR = timedelta(hours=1)


@pytest.fixture
def ingested(http: TestClient) -> list[dict[str, Any]]:
    """Five events through the webhook bridge, oldest first, as the API shows them."""
    http.post("/api/sources", json={"id": "shop", "name": "Shop"})
    http.post("/api/sources", json={"id": "forms", "name": "Forms"})
    ids = []
    sent = ["order/shop", "order/shop", "refund/shop", "signup/forms", "order/forms"]
    for n, path in enumerate(sent):
        body = {"n": n, "user": f"u{n % 2}", "customer": {"email": f"c{n}@x.com"}}
        answer = http.post(f"/collect/{path}", json=body)
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["id"])
    return [http.get(f"/api/events/{i}").json() for i in ids]


def numbers(*args: str) -> list[int]:
    listed = ok_json("events", "list", "--source", "shop", "--source", "forms", *args)
    return [e["properties"]["n"] for e in listed["events"]]


def test_events_list_as_json_is_what_the_api_answers(ingested: list[dict[str, Any]]) -> None:
    listed = ok_json("events", "list", "--source", "shop", "--source", "forms")
    assert set(listed) == {"events"}
    assert listed["events"] == ingested[::-1]


def test_events_list_filters_like_the_api(ingested: list[dict[str, Any]]) -> None:
    assert numbers("--type", "order") == [4, 1, 0]
    assert numbers("--type", "refund", "--type", "signup") == [3, 2]
    assert numbers("--where", "user=u1") == [3, 1]
    assert numbers("--where", "properties.customer.email=c2@x.com") == [2]
    assert numbers("--where", "n=4") == [4]
    assert numbers("--where", "user=u0", "--type", "order") == [4, 0]
    assert numbers("--since", ingested[2]["received_at"]) == [
        e["properties"]["n"]
        for e in ingested[::-1]
        if e["received_at"] >= ingested[2]["received_at"]
    ]
    assert numbers("--until", ingested[0]["received_at"]) == []
    assert numbers("--with-profile") == []
    assert numbers("--limit", "2") == [4, 3]


def test_events_list_as_a_table(ingested: list[dict[str, Any]]) -> None:
    table = ok("events", "list", "--source", "shop")
    for word in ("received", "type", "source", "order", "refund", "shop"):
        assert word in table
    assert "signup" not in table


def test_events_show_prints_the_event_whole(ingested: list[dict[str, Any]]) -> None:
    for event in ingested:
        assert json.loads(ok("events", "show", event["id"])) == event


def test_an_unknown_event_exits_1_with_a_message(ingested: list[dict[str, Any]]) -> None:
    error = fails("events", "show", "01a20000-0000-7000-8000-000000000000")
    assert "not found" in error


@pytest.mark.parametrize(
    "args",
    [["--since", "yesterday"], ["--where", "no-equals-sign"], ["--where", "a..b=1"]],
)
def test_bad_filters_are_usage_errors(ingested: list[dict[str, Any]], args: list[str]) -> None:
    assert "Error" in fails("events", "list", *args, code=2)


def test_insights_by_type_as_json(ingested: list[dict[str, Any]]) -> None:
    counts = ok_json("insights", "--by", "type", "--source", "shop", "--source", "forms")
    assert counts["by"] == ["type"]
    assert counts["total"] == 5
    assert counts["rows"] == [
        {"type": "order", "count": 3, "value": 3},
        {"type": "refund", "count": 1, "value": 1},
        {"type": "signup", "count": 1, "value": 1},
    ]


def test_insights_by_source_with_distinct_and_filters(ingested: list[dict[str, Any]]) -> None:
    counts = ok_json(
        "insights", "--by", "source", "--distinct", "properties.user", "--type", "order"
    )
    assert {r["source"]: (r["count"], r["value"]) for r in counts["rows"]} == {
        "shop": (2, 2),
        "forms": (1, 1),
    }
    by_user = ok_json("insights", "--by", "properties.user", "--source", "shop")
    assert {r["properties.user"]: r["count"] for r in by_user["rows"]} == {"u0": 2, "u1": 1}


def test_insights_as_a_table(ingested: list[dict[str, Any]]) -> None:
    table = ok("insights", "--by", "type", "--source", "shop", "--no-chart")
    for word in ("3 events", "type", "count", "order", "refund"):
        assert word in table


def test_insights_draws_top_n_as_bars_and_a_series_as_lines(
    ingested: list[dict[str, Any]],
) -> None:
    bars = ok("insights", "--by", "type", "--top", "1", "--source", "shop", "--source", "forms")
    assert "count by type" in bars
    assert "█" in bars  # the bars, above the table
    assert "other" in bars
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = ["--since", (now - 3 * HOUR).isoformat(), "--until", (now + HOUR).isoformat()]
    series = ok("insights", "--by", "hour,source", "--metric", "sum:properties.n", *window)
    assert "sum:properties.n by hour, source" in series
    assert "shop" in series  # a line per source, named in the legend and the table
    assert series.count(now.isoformat(timespec="seconds")) >= 2  # each source's intervals


def test_insights_metrics_and_comparisons_as_json(ingested: list[dict[str, Any]]) -> None:
    answer = ok_json(
        "insights",
        "--by",
        "source",
        "--metric",
        "p50:properties.n",
        "--where",
        "n[gt]=0",
        "--source",
        "shop",
        "--source",
        "forms",
    )
    assert {r["source"]: r["value"] for r in answer["rows"]} == {"shop": 1.5, "forms": 3.5}
    assert answer["engine"] == "scan"


@pytest.mark.parametrize(
    "args",
    [
        ["--by", "colour"],
        ["--by", "type,source,hour,day"],
        ["--distinct", "user"],
        ["--metric", "median:properties.n"],
        ["--tz", "Nowhere/City"],
        ["--where", "n[gt]=ten"],
    ],
)
def test_bad_insight_queries_are_usage_errors(
    ingested: list[dict[str, Any]], args: list[str]
) -> None:
    assert "Error" in fails("insights", *args, code=2)


def test_tail_shows_the_backlog_oldest_first(ingested: list[dict[str, Any]]) -> None:
    shown = ok("events", "tail", "--source", "shop", "--backlog", "2", "--max-events", "2")
    lines = shown.splitlines()
    assert len(lines) == 2
    assert "n=1" in lines[0]
    assert "n=2" in lines[1]
    as_json = ok("events", "tail", "--source", "shop", "--backlog", "2", "--max-events", "2",
                 "--json")  # fmt: skip
    assert [json.loads(line) for line in as_json.splitlines()] == ingested[1:3]


def test_tail_prints_events_appended_after_it_starts(data_dir: Path, http: TestClient) -> None:
    http.post("/api/sources", json={"id": "shop", "name": "Shop"})
    before = http.post("/collect/order/shop", json={"n": -1}).json()["id"]
    command = "events tail --source shop --max-events 3 --backlog 0 --interval 0.1 --json"
    tail = subprocess.Popen(
        [sys.executable, "-m", "eventstitch", *command.split()],
        env={**os.environ, "EVENTSTITCH_DATA_DIR": str(data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    posted: list[str] = []
    try:
        # Keep appending until tail has shown three events: however long it takes to start,
        # it must show the ones appended after it started, in order, and nothing older.
        deadline = time.monotonic() + 60
        while tail.poll() is None and time.monotonic() < deadline:
            answer = http.post("/collect/order/shop", json={"n": len(posted)})
            posted.append(answer.json()["id"])
            time.sleep(0.05)
        out, err = tail.communicate(timeout=10)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err.decode()
    shown = [json.loads(line)["id"] for line in out.decode().splitlines()]
    assert len(shown) == 3
    assert before not in shown
    first = posted.index(shown[0])
    assert shown == posted[first : first + 3]
