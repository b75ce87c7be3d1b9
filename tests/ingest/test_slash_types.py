"""Event types with slashes (Shopify's `orders/create`) over real HTTP on both backends: the
last path segment is the source and everything before it the type, percent-escapes included;
a refused slash-typed request is kept in the quarantine and can be replayed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx2 as httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstitch.errors import BadRequest
from eventstitch.ingest.parsing import normalise_event_type, split_collect_path
from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, assert_error_shape, create_source, start_server
from tests.pg import backend_params, fresh_database_url

pytestmark = pytest.mark.e2e  # the HTTP tests start a real server per backend


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("slash")
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        env = {"EVENTSTITCH_DATABASE_URL": url} if url else {}
        live = start_server(folder / "data", folder / "server.log", **env)
        try:
            with live.client() as http:
                create_source(http, id="shopify")
            yield live
        finally:
            live.stop()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.mark.parametrize(
    ("path", "stored_type"),
    [
        ("/collect/orders/create/shopify", "orders/create"),
        ("/collect/orders%2Fcreate/shopify", "orders/create"),
        ("/collect/Orders%20Paid/v2/shopify", "orders-paid/v2"),
        ("/collect/app/sub.scription:1/shopify", "app/sub.scription:1"),
        ("/collect/" + "a/" * 64 + "shopify", "a/" * 63 + "a"),  # 127: under the limit
        ("/collect/" + "b/" * 63 + "bc/shopify", "b/" * 63 + "bc"),  # 128: at the limit
    ],
)
def test_the_last_segment_is_the_source_and_the_rest_the_type(
    http: httpx.Client, path: str, stored_type: str
) -> None:
    answer = http.post(path, json={"id": 820982911946154508})
    assert answer.status_code == 200, answer.text
    assert answer.json()["type"] == stored_type
    stored = all_events(http, type=stored_type)
    assert answer.json()["id"] in [e["id"] for e in stored]
    assert {e["source_id"] for e in stored} == {"shopify"}


@pytest.mark.parametrize(
    "path",
    [
        "/collect/orders//shopify",  # an empty segment
        "/collect/orders/%C3%A9t%C3%A9/shopify",  # unicode stays outside the type rules
        "/collect/orders/-create/shopify",  # a segment starting with a dash
        "/collect/" + "a/" * 64 + "a/shopify",  # 129 characters: one past the limit
    ],
)
def test_a_slash_type_breaking_the_rules_is_refused_and_kept(http: httpx.Client, path: str) -> None:
    before = len(all_events(http))
    error = assert_error_shape(http.post(path, json={"n": 1}), 400)
    assert error["errors"][0]["field"] == "event_type"
    assert len(all_events(http)) == before
    kept = http.get("/api/rejections", params={"reason": "bad_event_type"}).json()["rejections"]
    assert {r["source_id"] for r in kept} == {"shopify"}


def test_a_quarantined_slash_typed_request_replays_with_its_type(http: httpx.Client) -> None:
    create_source(http, id="paused", enabled=False)
    refused = http.post("/collect/orders/paid/paused", json={"order": 7})
    assert_error_shape(refused, 403)
    kept = http.get(
        "/api/rejections", params={"source_id": "paused", "reason": "disabled_source"}
    ).json()["rejections"]
    assert len(kept) == 1
    assert http.patch("/api/sources/paused", json={"enabled": True}).status_code == 200
    replayed = http.post(f"/api/rejections/{kept[0]['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    (event,) = all_events(http, source_id="paused")
    assert (event["type"], event["properties"]) == ("orders/paid", {"order": 7})


def test_the_openapi_document_names_both_parameters(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    params = paths["/collect/{event_type}/{source_id}"]["post"]["parameters"]
    assert [p["name"] for p in params] == ["event_type", "source_id"]
    assert "orders/create" in params[0]["description"]


_SEGMENT = st.from_regex(r"[a-z0-9][a-z0-9._:-]{0,9}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(segments=st.lists(_SEGMENT, min_size=1, max_size=5), source=_SEGMENT)
def test_any_valid_slash_type_splits_back_into_type_and_source(
    segments: list[str], source: str
) -> None:
    event_type = "/".join(segments)
    assert split_collect_path(f"/collect/{event_type}/{source}") == (event_type, source)
    assert normalise_event_type(event_type) == event_type


@settings(max_examples=200, deadline=None)
@given(raw=st.text(max_size=40))
def test_a_normalised_type_has_only_non_empty_segments(raw: str) -> None:
    try:
        value = normalise_event_type(raw)
    except BadRequest:
        return
    assert all(part and part[0].isalnum() for part in value.split("/"))
    assert len(value) <= 128
