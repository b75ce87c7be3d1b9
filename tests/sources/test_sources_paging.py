"""`GET /api/sources` answers a page at a time, and `sources list` follows the pages."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from eventstitch.config import Config
from tests.conftest import API_TOKEN, assert_error_shape, create_source, point_cli_at

IDS = [f"s{n}" for n in range(7)]


@pytest.fixture
def small_pages(config: Config) -> Iterator[TestClient]:
    settings: dict[str, Any] = {"sources_default_limit": 3, "sources_max_limit": 5}
    with TestClient(
        EventstitchApp(dataclasses.replace(config, **settings)), raise_server_exceptions=False
    ) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        for source_id in IDS:
            create_source(client, id=source_id)
        yield client


def _pages(client: TestClient, **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    for _ in range(20):
        answer = client.get(
            "/api/sources", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([s["id"] for s in body["sources"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("more pages than sources")


def test_sources_come_a_page_at_a_time_oldest_first_and_every_one_once(
    small_pages: TestClient,
) -> None:
    pages = _pages(small_pages)
    assert [len(p) for p in pages] == [3, 3, 2]  # the system source and 7 more
    listed = [i for p in pages for i in p]
    assert listed == ["system", *IDS]
    assert [i for p in _pages(small_pages, limit=5) for i in p] == listed


def test_the_largest_limit_is_taken_and_one_more_is_refused(small_pages: TestClient) -> None:
    answer = small_pages.get("/api/sources", params={"limit": 5})
    assert len(answer.json()["sources"]) == 5
    refused = assert_error_shape(small_pages.get("/api/sources", params={"limit": 6}), 422)
    assert refused["errors"] == [{"field": "limit", "limit": 5}]
    assert_error_shape(small_pages.get("/api/sources", params={"limit": 0}), 422)


def test_the_default_largest_limit_is_500(client: TestClient) -> None:
    assert client.get("/api/sources", params={"limit": 500}).status_code == 200
    refused = assert_error_shape(client.get("/api/sources", params={"limit": 501}), 422)
    assert refused["errors"] == [{"field": "limit", "limit": 500}]


@pytest.mark.parametrize("cursor", ["nonsense", "", "YWJjOnMx", "x" * 5000, "AAAA"])
def test_a_cursor_not_given_out_is_refused(small_pages: TestClient, cursor: str) -> None:
    answer = small_pages.get("/api/sources", params={"cursor": cursor})
    body = assert_error_shape(answer, 422)
    assert body["errors"][0]["field"] == "cursor"
    assert len(body["error"]) < 200


def test_sources_list_follows_every_page(
    config: Config, small_pages: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_cli_at(monkeypatch, config)
    monkeypatch.setenv("EVENTSTITCH_SOURCES_MAX_LIMIT", "2")
    monkeypatch.setenv("EVENTSTITCH_SOURCES_DEFAULT_LIMIT", "2")
    result = CliRunner().invoke(cli, ["sources", "list", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [s["id"] for s in json.loads(result.output)["sources"]] == ["system", *IDS]
