"""`GET /api/insights` on both backends: metrics, series with empty intervals, time zones,
top-N with `other`, comparisons, non-numbers skipped and counted, and every bad parameter a
400 naming it."""

from __future__ import annotations

import dataclasses
import math
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from tests.conftest import API_TOKEN, assert_error_shape, create_source

AMOUNTS: list[Any] = [5, 1.5, 10, "12", None, 7, {"n": 1}, 3]
"""The `amount` of each of eight events of the `shop` source: five numbers, three not."""


@pytest.fixture
def shop(client: TestClient) -> TestClient:
    create_source(
        client,
        id="shop",
        identification=[{"path": "email", "kind": "email", "create_profile": True}],
    )
    for n, amount in enumerate(AMOUNTS):
        body = {
            "amount": amount,
            "plan": ["free", "pro", "team"][n % 3],
            "email": f"u{n % 3}@example.com",
            "meta": {"region": "eu" if n < 5 else "us"},
        }
        kind = "charge" if n % 2 else "refund"
        assert client.post(f"/collect/{kind}/shop", json=body).status_code == 200
    return client


def ask(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/insights", params={"source_id": "shop", **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["engine"] in ("rollup", "scan")
    assert isinstance(body["took_ms"], float | int)
    return body


def by_key(body: dict[str, Any], *keys: str) -> dict[Any, dict[str, Any]]:
    return {
        (row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)): row
        for row in body["rows"]
    }


def test_numeric_metrics_skip_and_count_non_numbers(shop: TestClient) -> None:
    numbers = sorted(a for a in AMOUNTS if isinstance(a, int | float))
    expected = {
        "sum": sum(numbers),
        "avg": sum(numbers) / len(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "p50": 5.0,  # sorted 1.5 3 5 7 10: the middle one
        "p90": 7 + (10 - 7) * 0.6,  # rank 0.9 * 4 = 3.6
    }
    for metric, value in expected.items():
        body = ask(shop, metric=f"{metric}:properties.amount")
        (row,) = body["rows"]
        assert math.isclose(row["value"], value), (metric, row)
        assert row["skipped"] == 3 == body["skipped"]  # "12", null, an object
        assert row["count"] == body["total"] == 8
        assert body["engine"] == "scan"


def test_numeric_metric_by_dimension_and_nothing_numeric_is_null(shop: TestClient) -> None:
    body = ask(shop, metric="sum:properties.amount", by="properties.meta.region")
    rows = by_key(body, "properties.meta.region")
    assert rows["eu"]["value"] == 5 + 1.5 + 10
    assert rows["eu"]["skipped"] == 2
    assert rows["us"]["value"] == 10
    assert rows["us"]["skipped"] == 1
    none_matched = ask(shop, metric="avg:properties.amount", type="none-such")
    assert none_matched["rows"] == [{"count": 0, "value": None, "skipped": 0}]
    assert ask(shop, type="none-such")["rows"] == [{"count": 0, "value": 0}]
    nothing = ask(shop, metric="max:properties.plan")
    assert nothing["rows"][0]["value"] is None
    assert nothing["skipped"] == 8


def test_count_distinct_of_a_path_a_profile_and_a_source(shop: TestClient) -> None:
    assert ask(shop, metric="count_distinct:properties.email")["rows"][0]["value"] == 3
    assert ask(shop, metric="count_distinct:profile_id")["rows"][0]["value"] == 3
    assert ask(shop, metric="count_distinct:source_id")["rows"][0]["value"] == 1
    by_type = by_key(ask(shop, metric="count_distinct:properties.plan", by="type"), "type")
    assert by_type["charge"]["value"] == 3
    assert by_type["refund"]["value"] == 3


def test_comparisons_on_property_paths(shop: TestClient) -> None:
    assert ask(shop, **{"properties.amount[gt]": "4"})["total"] == 3  # 5, 10, 7
    assert ask(shop, **{"properties.amount[lt]": "4"})["total"] == 2  # 1.5, 3
    assert ask(shop, **{"properties.plan[in]": "pro,team"})["total"] == 5
    assert ask(shop, **{"properties.amount[in]": "5,12"})["total"] == 2  # 5 and "12"
    assert ask(shop, **{"properties.amount[exists]": "true"})["total"] == 8  # null is a value
    assert ask(shop, **{"properties.nothing[exists]": "false"})["total"] == 8
    both = ask(shop, **{"properties.amount[gt]": "2", "properties.meta.region": "us"})
    assert both["total"] == 2  # 7 and 3; the equality filter as on /api/events


def test_three_dimensions_and_booleans(shop: TestClient) -> None:
    body = ask(shop, by="type,profile_less,converted")
    rows = by_key(body, "type", "profile_less", "converted")
    assert {k: r["count"] for k, r in rows.items()} == {
        ("charge", True, True): 4,  # collected without a profile, linked by email since
        ("refund", True, True): 4,
    }


def test_top_folds_the_rest_into_other(shop: TestClient) -> None:
    body = ask(shop, by="properties.plan", top="1", metric="sum:properties.amount")
    rows = body["rows"]
    # free: 5 (and "12", {"n": 1}); pro: 1.5 + 3 (and null); team: 10 + 7
    assert [(r["properties.plan"], r["value"]) for r in rows] == [("team", 17), ("other", 9.5)]
    assert rows[1]["other"] is True
    assert rows[1]["count"] == 6
    assert rows[1]["skipped"] == 3
    counted = ask(shop, by="properties.plan,day", top="2")
    assert {r["properties.plan"] for r in counted["rows"]} == {"free", "pro", "other"}


def test_series_has_its_empty_intervals_and_count_by_hour_uses_the_rollup(
    shop: TestClient,
) -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    since, until = hour - timedelta(hours=4), hour + timedelta(hours=2)
    window = {"since": since.isoformat(), "until": until.isoformat()}
    counted = ask(shop, by="hour", **window)
    assert counted["engine"] == "rollup"
    labels = [(hour + timedelta(hours=h)).isoformat(timespec="seconds") for h in range(-4, 2)]
    assert [r["hour"] for r in counted["rows"]] == labels
    assert [r["count"] for r in counted["rows"]] == [0, 0, 0, 0, 8, 0]
    summed = ask(shop, by="hour", metric="sum:properties.amount", **window)
    assert summed["engine"] == "scan"
    assert [r["value"] for r in summed["rows"]] == [None] * 4 + [26.5, None]
    by_type = ask(shop, by="type,hour", **window)
    assert len(by_type["rows"]) == 12  # every hour for each type
    nothing = {"type": "none-such", **window}
    assert [r["count"] for r in ask(shop, by="hour", **nothing)["rows"]] == [0] * 6
    assert ask(shop, by="type,hour", **nothing)["rows"] == []  # no type to draw a series for


def test_day_buckets_follow_the_time_zone(shop: TestClient) -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    body = ask(shop, by="day", tz="Europe/Paris")
    (row,) = body["rows"]
    midnight = datetime.now(paris).replace(hour=0, minute=0, second=0, microsecond=0)
    assert row["day"] == midnight.isoformat(timespec="seconds")  # e.g. ...T00:00:00+01:00
    assert body["tz"] == "Europe/Paris"


BAD_PARAMETERS: list[tuple[dict[str, str], str]] = [
    ({"metric": "median:properties.amount"}, "metric"),
    ({"metric": "sum"}, "metric"),
    ({"metric": "sum:amount"}, "metric"),
    ({"metric": "count_distinct:email"}, "metric"),
    ({"by": "type,source,day,properties.plan"}, "by"),
    ({"by": "hour,day"}, "by"),
    ({"by": "week,weekday"}, "by"),
    ({"by": "type,type"}, "by"),
    ({"by": "properties."}, "by"),
    ({"tz": "Mars/Olympus_Mons"}, "tz"),
    ({"tz": "../../etc/passwd"}, "tz"),
    ({"top": "0"}, "top"),
    ({"top": "ten", "by": "type"}, "top"),
    ({"top": "3", "by": "day"}, "top"),
    ({"properties.amount[gt]": "ten"}, "properties.amount[gt]"),
    ({"properties.amount[lt]": "NaN"}, "properties.amount[lt]"),
    ({"properties.amount[exists]": "yes"}, "properties.amount[exists]"),
    ({"properties.amount[in]": ",".join(["x"] * 101)}, "properties.amount[in]"),
    ({"since": "yesterday"}, "since"),
    ({"by": "minute", "since": "2020-01-01", "until": "2020-02-01"}, "by"),
]


def test_every_bad_parameter_is_a_400_naming_it(shop: TestClient) -> None:
    for params, field in BAD_PARAMETERS:
        body = assert_error_shape(shop.get("/api/insights", params=params), 400)
        assert body["errors"][0]["field"] == field, (params, body)
        assert field.split("[")[0] in body["error"], body


def test_in_takes_up_to_its_limit(shop: TestClient) -> None:
    values = ",".join(["free"] + ["x"] * 99)
    assert ask(shop, **{"properties.plan[in]": values})["total"] == 3


@pytest.fixture
def small(config: Config) -> Iterator[TestClient]:
    """An app with tiny insights budgets: 3 groups, 4 values held, 2 intervals."""
    tight = dataclasses.replace(
        config, max_insight_groups=3, max_insight_values=4, max_insight_buckets=2
    )
    with TestClient(EventstitchApp(tight), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="shop")
        for n in range(4):
            assert (
                client.post(f"/collect/t{n}/shop", json={"n": n, "twice": [n, n]}).status_code
                == 200
            )
        yield client


def test_budgets_hold_at_their_limit_and_refuse_or_truncate_one_past(small: TestClient) -> None:
    three = ask(small, by="type", **{"properties.n[lt]": "3"})
    assert len(three["rows"]) == 3
    assert three["truncated"] is False
    four = ask(small, by="type")
    assert len(four["rows"]) == 3
    assert four["truncated"] is True
    assert ask(small, metric="sum:properties.n")["rows"][0]["value"] == 6  # 4 values held
    refused = small.get("/api/insights", params={"metric": "sum:properties.twice[*]"})
    body = assert_error_shape(refused, 400)  # 8 values
    assert body["errors"][0] == {"field": "metric", "limit": 4}
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    two = {"since": hour.isoformat(), "until": (hour + timedelta(hours=2)).isoformat()}
    assert [r["count"] for r in ask(small, by="hour", **two)["rows"]] == [4, 0]
    three_hours = {"since": hour.isoformat(), "until": (hour + timedelta(hours=3)).isoformat()}
    body = assert_error_shape(small.get("/api/insights", params={"by": "hour", **three_hours}), 400)
    assert body["errors"][0] == {"field": "by", "limit": 2}
