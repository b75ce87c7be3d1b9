"""The webhook bridge over real HTTP: the body limit holds before and while the body arrives,
and what a real client sends is what gets stored."""

from __future__ import annotations

from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import (
    LiveServer,
    all_events,
    assert_error_shape,
    create_source,
    start_server,
)

LIMIT = 1024

pytestmark = pytest.mark.e2e  # every test here starts a real server process


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for the module, with a 1 KiB body limit and one webhook source."""
    folder: Path = tmp_path_factory.mktemp("small")
    server = start_server(
        folder / "data", folder / "server.log", EVENTSTITCH_MAX_BODY_BYTES=str(LIMIT)
    )
    try:
        with server.client() as http:
            create_source(http, id="hooks")
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(small_server: LiveServer) -> Iterator[httpx.Client]:
    with small_server.client() as client:
        yield client


def event_total(http: httpx.Client) -> int:
    return len(all_events(http))


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    small_server: LiveServer, http: httpx.Client
) -> None:
    before = event_total(http)
    host, port = small_server.url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=10)
    try:
        # Announce a gigabyte and send none of it: the answer must come anyway.
        connection.putrequest("POST", "/collect/order/hooks")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(10**9))
        connection.endheaders()
        raw = connection.getresponse()
        answer = httpx.Response(raw.status, headers=raw.getheaders(), content=raw.read())
    finally:
        connection.close()
    error = assert_error_shape(answer, 413)
    assert error["errors"] == [{"field": "body", "limit": LIMIT}]
    assert event_total(http) == before


def test_a_streamed_body_without_length_is_refused_once_it_passes_the_limit(
    http: httpx.Client,
) -> None:
    before = event_total(http)

    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(8):  # 8 x 256 bytes: twice the limit, bounded
            yield b"x" * 256
        yield b'"}'

    answer = http.post(
        "/collect/order/hooks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert_error_shape(answer, 413)
    assert event_total(http) == before


def test_a_streamed_body_under_the_limit_is_stored_whole(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(3):
            yield b"y" * 100
        yield b'"}'

    answer = http.post(
        "/collect/order/hooks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    stored = http.get(f"/api/events/{answer.json()['id']}").json()
    assert stored["properties"] == {"pad": "y" * 300}


def test_a_body_of_exactly_the_limit_is_stored_and_one_byte_more_is_refused(
    http: httpx.Client,
) -> None:
    before = event_total(http)
    padding = LIMIT - len(b'{"pad": ""}')
    exact = b'{"pad": "' + b"z" * padding + b'"}'
    assert len(exact) == LIMIT
    accepted = http.post("/collect/order/hooks", content=exact)
    assert accepted.status_code == 200, accepted.text
    refused = http.post("/collect/order/hooks", content=exact + b" ")
    assert_error_shape(refused, 413)
    assert event_total(http) == before + 1


def test_the_context_over_real_http_names_the_client_address_and_agent(
    http: httpx.Client,
) -> None:
    answer = http.post(
        "/collect/Order Paid/hooks?attempt=2",
        content=b"status=paid&item=a&item=b",
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "user-agent": "Shopify-Captain-Hook",
            "x-shopify-hmac-sha256": "c2lnbmF0dXJl",
            "x-webhook-secret": "hunter2",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["profile_less"] is True
    # Readable at once: the answer came after the commit.
    stored = http.get(f"/api/events/{answer.json()['id']}").json()
    assert stored["type"] == "order-paid"
    assert stored["properties"] == {"status": "paid", "item": ["a", "b"]}
    context = stored["context"]
    assert context["client"] == "127.0.0.1"
    assert context["user_agent"] == "Shopify-Captain-Hook"
    assert context["content_type"] == "application/x-www-form-urlencoded"
    assert context["query"] == "attempt=2"
    assert context["body_kind"] == "form"
    assert context["headers"]["host"] == http.base_url.netloc.decode()
    assert "authorization" not in context["headers"]  # the client sends the API token
    assert "hunter2" not in str(context)
    assert "c2lnbmF0dXJl" not in str(context)
