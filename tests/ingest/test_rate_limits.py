"""Per-source rate limits: a real burst over ASGI lets exactly `burst` requests in and answers
the rest 429 with Retry-After in the one error shape, storing nothing for them; the bucket
refills; the default comes from the settings and a source may override it or be unlimited."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from eventstitch.sources.cache import TokenBucket, effective_limit
from eventstitch.storage.records import RateLimit
from tests.conftest import API_TOKEN, all_events, assert_error_shape, create_source
from tests.ingest.test_collect_refusals import rejected


def limited_client(config: Config, **settings: Any) -> Iterator[TestClient]:
    app = EventstitchApp(dataclasses.replace(config, **settings))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield test_client


@pytest.fixture
def defaulted(config: Config) -> Iterator[TestClient]:
    """A client whose settings limit every source to 2 at once, then 1 every 10 seconds."""
    yield from limited_client(config, rate_limit_per_second=0.1, rate_limit_burst=2)


def burst(client: TestClient, path: str, count: int) -> list[Any]:
    return [client.post(path, json={"n": n}) for n in range(count)]


def assert_rate_limited(answer: Any, source_id: str) -> dict[str, Any]:
    error = assert_error_shape(answer, 429)
    assert f"source {source_id!r} is over its rate limit" in error["error"]
    retry_after = answer.headers["retry-after"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    return error


def test_a_burst_lets_exactly_burst_requests_in_and_stores_only_those(
    client: TestClient,
) -> None:
    create_source(client, id="hooks", rate_limit={"per_second": 0.1, "burst": 3})
    before = rejected(client, "rate_limited")
    answers = burst(client, "/collect/order/hooks", 8)
    assert [a.status_code for a in answers] == [200] * 3 + [429] * 5
    for answer in answers[3:]:
        error = assert_rate_limited(answer, "hooks")
        assert "0.1 requests per second (burst 3)" in error["error"]
        assert error["errors"] == [{"field": "rate_limit", "per_second": 0.1, "burst": 3}]
        assert int(answer.headers["retry-after"]) <= 10
    stored = all_events(client, source_id="hooks")
    assert sorted(e["properties"]["n"] for e in stored) == [0, 1, 2]
    assert stored[0]["id"] in {a.json()["id"] for a in answers[:3]}
    assert rejected(client, "rate_limited") == before + 5


def test_the_bucket_refills_at_the_rate(client: TestClient) -> None:
    create_source(client, id="hooks", rate_limit={"per_second": 5, "burst": 1})
    statuses = [a.status_code for a in burst(client, "/collect/order/hooks", 30)]
    assert statuses[0] == 200
    assert 429 in statuses  # 30 requests outrun one token every 200 ms
    time.sleep(0.3)  # one and a half tokens' worth; the burst of one caps it at one
    assert [a.status_code for a in burst(client, "/collect/order/hooks", 1)] == [200]
    assert len(all_events(client, source_id="hooks")) == statuses.count(200) + 1


def test_the_default_of_the_settings_applies_until_a_source_overrides_it(
    defaulted: TestClient,
) -> None:
    create_source(defaulted, id="plain")
    create_source(defaulted, id="free", rate_limit={"per_second": 0})
    create_source(defaulted, id="own", rate_limit={"per_second": 0.1, "burst": 4})
    assert [a.status_code for a in burst(defaulted, "/collect/o/plain", 4)] == [200] * 2 + [429] * 2
    assert [a.status_code for a in burst(defaulted, "/collect/o/free", 6)] == [200] * 6
    assert [a.status_code for a in burst(defaulted, "/collect/o/own", 5)] == [200] * 4 + [429]
    back = defaulted.patch("/api/sources/free", json={"rate_limit": None}).json()
    assert back["rate_limit"] is None
    assert [a.status_code for a in burst(defaulted, "/collect/o/free", 3)] == [200] * 2 + [429]


def test_a_changed_limit_applies_at_once(client: TestClient) -> None:
    create_source(client, id="hooks", rate_limit={"per_second": 0.1, "burst": 1})
    assert [a.status_code for a in burst(client, "/collect/o/hooks", 2)] == [200, 429]
    changed = client.patch("/api/sources/hooks", json={"rate_limit": {"per_second": 0}})
    assert changed.json()["rate_limit"] == {"per_second": 0.0, "burst": 0}
    assert [a.status_code for a in burst(client, "/collect/o/hooks", 3)] == [200] * 3


def test_track_is_limited_per_tracker_source(client: TestClient) -> None:
    create_source(client, id="web", kind="tracker", rate_limit={"per_second": 0.1, "burst": 2})
    create_source(client, id="app", kind="tracker")
    visit = {"events": [{"type": "page-view"}, {"type": "click"}]}
    answers = [client.post("/track", json={"source": {"id": "web"}, **visit}) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert_rate_limited(answers[2], "web")
    assert client.post("/track", json={"source": {"id": "app"}, **visit}).status_code == 200
    assert len(all_events(client, source_id="web")) == 4  # two calls of two events each


def test_buckets_exist_only_for_known_limited_sources(defaulted: TestClient) -> None:
    app = defaulted.app
    assert isinstance(app, EventstitchApp)
    cache = app.ctx.sources
    for n in range(20):
        assert defaulted.post(f"/collect/o/unknown-{n}", json={}).status_code == 404
        assert cache.bucket(f"unknown-{n}") is None
    create_source(defaulted, id="hooks")
    create_source(defaulted, id="free", rate_limit={"per_second": 0})
    defaulted.post("/collect/o/hooks", json={})
    defaulted.post("/collect/o/free", json={})
    assert cache.bucket("hooks") is not None
    assert cache.bucket("free") is None
    assert defaulted.delete("/api/sources/hooks").status_code == 204
    assert defaulted.post("/collect/o/hooks", json={}).status_code == 404
    assert cache.bucket("hooks") is None


@pytest.mark.parametrize(
    "rate_limit",
    [
        {"per_second": -1},
        {"per_second": 1, "burst": -1},
        {"burst": 3},
        {"per_second": "fast"},
        {"per_second": 1, "unknown": 1},
    ],
)
def test_a_bad_rate_limit_is_422(client: TestClient, rate_limit: dict[str, Any]) -> None:
    answer = client.post("/api/sources", json={"name": "x", "rate_limit": rate_limit})
    assert_error_shape(answer, 422)


# -- the bucket itself, on a clock the test controls -------------------------------------------


def test_a_bucket_starts_full_takes_one_a_request_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    assert bucket.take(0.0) == 0.0
    taken = [bucket.take(1000.0) for _ in range(3)]
    assert taken[:2] == [0.0, 0.0]
    assert taken[2] == pytest.approx(0.1)


def test_a_changed_limit_keeps_what_was_earned_up_to_the_new_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=10, now=0.0)
    bucket.change(5.0, 2, now=1.0)
    assert [bucket.take(1.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take(1.0) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("limit", "default", "expected"),
    [
        (None, RateLimit(0), None),
        (None, RateLimit(2.5), (2.5, 3)),
        (None, RateLimit(0.1), (0.1, 1)),
        (RateLimit(50, 100), RateLimit(1), (50, 100)),
        (RateLimit(0), RateLimit(5, 5), None),
    ],
)
def test_the_limit_in_force(
    limit: RateLimit | None, default: RateLimit, expected: tuple[float, int] | None
) -> None:
    assert effective_limit(limit, default) == expected


# -- limits at the edge of their range ----------------------------------------------------------


def test_a_rate_limit_outside_its_range_is_422_naming_the_field_and_the_range(
    client: TestClient,
) -> None:
    before = len(client.get("/api/sources").json()["sources"])
    for rate_limit, field in [
        ({"per_second": 5e-324}, "body.rate_limit.per_second"),
        ({"per_second": 1e-300}, "body.rate_limit.per_second"),
        ({"per_second": 0.0009}, "body.rate_limit.per_second"),
        ({"per_second": 1_000_001}, "body.rate_limit.per_second"),
        ({"per_second": 1, "burst": 1_000_001}, "body.rate_limit.burst"),
    ]:
        answer = client.post("/api/sources", json={"name": "x", "rate_limit": rate_limit})
        error = assert_error_shape(answer, 422)
        assert error["errors"][0]["field"] == field, error
        assert "1000000" in error["error"] or "1e+06" in error["error"], error
    assert len(client.get("/api/sources").json()["sources"]) == before  # nothing half-made
    create_source(client, id="edge", rate_limit={"per_second": 0.001, "burst": 1_000_000})
    tiny = client.patch("/api/sources/edge", json={"rate_limit": {"per_second": 5e-324}})
    error = assert_error_shape(tiny, 422)
    assert "between 0.001 and 1000000" in error["error"]
    assert client.get("/api/sources/edge").json()["rate_limit"] == {
        "per_second": 0.001,
        "burst": 1_000_000,
    }
    fast = client.patch("/api/sources/edge", json={"rate_limit": {"per_second": 1_000_000}})
    assert fast.status_code == 200, fast.text


def test_a_stored_limit_outside_the_range_is_held_to_it_and_collect_keeps_answering(
    client: TestClient,
) -> None:
    """A limit written by an older version (or an import) must not turn /collect into 500s:
    the tiny rate is held to the slowest allowed, the huge one to the fastest."""
    app = client.app
    assert isinstance(app, EventstitchApp)
    create_source(client, id="tiny")
    create_source(client, id="huge")
    for source_id, limit in (("tiny", RateLimit(5e-324)), ("huge", RateLimit(1e300, 10**15))):
        client.portal.call(  # type: ignore[union-attr]
            app.ctx.storage.sources.update, source_id, {"rate_limit": limit}, 1
        )
        app.ctx.sources.forget(source_id)
    answers = burst(client, "/collect/o/tiny", 3)
    assert [a.status_code for a in answers] == [200, 429, 429]
    for answer in answers[1:]:
        assert_rate_limited(answer, "tiny")
        assert 1 <= int(answer.headers["retry-after"]) <= 3600
    assert [a.status_code for a in burst(client, "/collect/o/huge", 5)] == [200] * 5


def test_the_limit_in_force_is_held_to_the_accepted_range() -> None:
    assert effective_limit(RateLimit(5e-324), RateLimit(0)) == (0.001, 1)
    assert effective_limit(RateLimit(1e300, 10**15), RateLimit(0)) == (1_000_000.0, 1_000_000)
    assert effective_limit(RateLimit(float("nan")), RateLimit(0)) is None
