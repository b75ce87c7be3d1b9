"""CORS for browser trackers on /collect and /track, configurable; never on /api."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import API_TOKEN, assert_error_shape, create_source, make_config

SHOP = "https://shop.example"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[TestClient]:
    config = make_config(tmp_path, cors_origins=frozenset({SHOP}))
    with TestClient(EventstitchApp(config)) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        create_source(client, id="web", kind="tracker")
        yield client


def preflight(client: TestClient, path: str, origin: str) -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, idempotency-key",
        },
    )


@pytest.mark.parametrize(
    ("path", "methods"), [("/collect/x/hooks", "POST, GET"), ("/track", "POST")]
)
def test_an_allowed_origin_passes_the_preflight(
    browser: TestClient, path: str, methods: str
) -> None:
    answer = preflight(browser, path, SHOP)
    assert answer.status_code == 204
    headers = answer.headers
    assert headers["access-control-allow-origin"] == SHOP
    assert headers["access-control-allow-methods"] == methods
    assert headers["access-control-allow-headers"] == "content-type, idempotency-key"


def test_an_unknown_origin_is_refused_and_stores_nothing(browser: TestClient) -> None:
    answer = preflight(browser, "/collect/x/hooks", "https://evil.example")
    assert_error_shape(answer, 403)
    assert "access-control-allow-origin" not in answer.headers
    posted = browser.post("/collect/x/hooks", json={}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in posted.headers  # the browser will not read it


def test_answers_and_refusals_carry_the_origin_for_allowed_browsers(browser: TestClient) -> None:
    ok = browser.post("/collect/x/hooks", json={}, headers={"Origin": SHOP})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == SHOP
    refused = browser.post("/collect/x/nope", json={}, headers={"Origin": SHOP})
    assert_error_shape(refused, 404)
    assert refused.headers["access-control-allow-origin"] == SHOP


def test_a_get_to_a_signed_source_passes_the_preflight_and_its_405_is_readable(
    browser: TestClient,
) -> None:
    rule = {"preset": "github", "secrets": ["It's a Secret to Everybody"]}
    create_source(browser, id="signed", signature=rule)
    assert preflight(browser, "/collect/x/signed", SHOP).status_code == 204
    refused = browser.get("/collect/x/signed?a=1", headers={"Origin": SHOP})
    assert assert_error_shape(refused, 405)["errors"][0]["allowed"] == ["POST"]
    assert refused.headers["allow"] == "POST"
    assert refused.headers["access-control-allow-origin"] == SHOP


def test_api_routes_never_answer_cross_origin(browser: TestClient) -> None:
    answer = browser.get("/api/sources", headers={"Origin": SHOP})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in preflight(browser, "/api/sources", SHOP).headers


def test_without_configured_origins_there_are_no_cors_headers(client: TestClient) -> None:
    create_source(client, id="hooks")
    answer = client.post("/collect/x/hooks", json={}, headers={"Origin": SHOP})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert_error_shape(preflight(client, "/collect/x/hooks", SHOP), 405)
