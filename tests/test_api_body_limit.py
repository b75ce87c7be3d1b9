"""Management API and console requests are bounded like ingest ones: a body over
EVENTSTITCH_API_MAX_BODY_BYTES is answered 413 in the error shape, whether its Content-Length
says so or it streams in chunked, and the request changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import orjson
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, assert_error_shape
from tests.ingest.live import server_on
from tests.pg import backend_params

pytestmark = pytest.mark.e2e  # every test here starts a real server process

LIMIT = 2048


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with server_on(
        request.param, tmp_path_factory, EVENTSTITCH_API_MAX_BODY_BYTES=str(LIMIT)
    ) as live:
        yield live


def source_body(source_id: str, size: int) -> bytes:
    """A valid source to create, padded with spaces to exactly `size` bytes."""
    body = orjson.dumps({"id": source_id, "name": "padded"})
    return body + b" " * (size - len(body))


def in_chunks(body: bytes) -> Iterator[bytes]:
    """The body streamed in pieces, so no Content-Length announces its size."""
    for start in range(0, len(body), 512):
        yield body[start : start + 512]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_a_body_at_the_limit_is_taken_and_one_byte_more_is_413(
    server: LiveServer, streamed: bool
) -> None:
    kind = "chunked" if streamed else "sized"
    with server.client() as http:
        at_limit = source_body(f"at-{kind}", LIMIT)
        over = source_body(f"over-{kind}", LIMIT + 1)
        json = {"content-type": "application/json"}

        taken = http.post(
            "/api/sources", content=in_chunks(at_limit) if streamed else at_limit, headers=json
        )
        assert taken.status_code == 201, taken.text

        refused = http.post(
            "/api/sources", content=in_chunks(over) if streamed else over, headers=json
        )
        error = assert_error_shape(refused, 413)
        assert error["errors"] == [
            {"field": "body", "limit": LIMIT, "setting": "EVENTSTITCH_API_MAX_BODY_BYTES"}
        ]
        assert http.get(f"/api/sources/over-{kind}").status_code == 404
        assert http.get(f"/api/sources/at-{kind}").status_code == 200


def test_the_limit_holds_on_the_console_too(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        answer = browser.post(
            "/signin",
            content=b"token=" + b"x" * LIMIT,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 413
