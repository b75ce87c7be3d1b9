"""Requests to a wrong URL are visible, over real HTTP on both backends: a path under /collect
of the wrong shape, /track/..., or a path an analytics SDK posts to is answered 404 in the
error shape, counted by route family in /metrics and kept in the quarantine as
`unknown_route`, with harmless headers only; a replay of it is a clear 409; nothing is stored."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, assert_error_shape, create_source
from tests.ingest.live import server_on
from tests.pg import backend_params

pytestmark = pytest.mark.e2e  # every test here starts a real server process


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with server_on(request.param, tmp_path_factory) as live:
        with live.client() as http:
            create_source(http, id="hooks")
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def unknown_routes(http: httpx.Client, family: str) -> float:
    text = http.get("/metrics").text
    found = re.search(rf'^eventstitch_unknown_routes_total{{family="{family}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


WRONG = [
    # (method, path, family)
    ("POST", "/collect/order", "collect"),
    ("POST", "/collect//hooks", "collect"),
    ("GET", "/collect", "collect"),
    ("POST", "/track/", "track"),
    ("POST", "/track/v1/event", "track"),
    # SDK-looking paths that are none of the SDK routes (those answer in the SDK's shape).
    ("POST", "/v1/events", "sdk"),
    ("POST", "/v1/batch/extra", "sdk"),
    ("POST", "/batch/v2", "sdk"),
    ("POST", "/capture/x", "sdk"),
    ("POST", "/e/x", "sdk"),
    ("POST", "/i/v0/engage/", "sdk"),
]


@pytest.mark.parametrize(("method", "path", "family"), WRONG)
def test_a_wrong_route_is_404_counted_by_family_and_kept_with_harmless_headers_only(
    http: httpx.Client, method: str, path: str, family: str
) -> None:
    before_events = len(all_events(http))
    before_count = unknown_routes(http, family)
    body = b'{"event": "signed_up", "properties": {"plan": "pro"}}'
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "analytics-node/1.0",
        "X-Trace": "t-1",
        "X-Write-Key": "wk-secret",
        "Stripe-Signature": "t=1,v1=abc",
    }
    answer = http.request(
        method,
        path,
        params={"api_key": "phc_secret", "writeKey": "wk", "ver": "1.2"},
        content=body if method == "POST" else None,
        headers={**headers, "Authorization": "Basic d2s6"},
    )
    error = assert_error_shape(answer, 404)
    assert error["errors"] == [{"field": "path", "value": path, "family": family}]
    assert "/collect/{event_type}/{source_id}" in error["error"]
    assert unknown_routes(http, family) == before_count + 1
    assert len(all_events(http)) == before_events

    kept = http.get("/api/rejections", params={"reason": "unknown_route", "limit": 1}).json()
    [record] = kept["rejections"]
    assert record["path"] == path
    assert record["status"] == 404
    assert record["route"] == family
    assert record["source_id"] is None  # a path with no event type names no source either
    # No source is known, so only headers no source may read its secret from are kept: not
    # User-Agent, which a token source may use.
    assert set(record["headers"]) <= {"content-type", "content-length", "accept"}
    assert record["headers"]["content-type"] == "application/json"
    assert record["query"] == "ver=1.2"
    whole = http.get(f"/api/rejections/{record['id']}").json()
    assert whole["body"] == (body.decode() if method == "POST" else "")

    replay = http.post(f"/api/rejections/{record['id']}/replay")
    refused = assert_error_shape(replay, 409)
    assert refused["errors"] == [{"field": "path", "value": path}]
    assert len(all_events(http)) == before_events


def test_another_unknown_path_is_counted_as_other_and_not_kept(http: httpx.Client) -> None:
    before = unknown_routes(http, "other")
    kept_before = http.get("/api/rejections", params={"limit": 1000}).json()["rejections"]
    assert_error_shape(http.get("/wp-login.php"), 404)
    assert_error_shape(http.get("/api/nothing-here"), 404)
    assert unknown_routes(http, "other") == before + 2
    assert http.get("/api/rejections", params={"limit": 1000}).json()["rejections"] == kept_before


def test_right_routes_are_not_counted(http: httpx.Client) -> None:
    families = ("collect", "track", "sdk", "other")
    before = {family: unknown_routes(http, family) for family in families}
    assert http.post("/collect/order/hooks", json={"a": 1}).status_code == 200
    assert http.get("/api/sources/hooks").status_code == 200
    assert_error_shape(http.get("/api/sources/none"), 404)  # an unknown thing, not a route
    assert {family: unknown_routes(http, family) for family in families} == before
