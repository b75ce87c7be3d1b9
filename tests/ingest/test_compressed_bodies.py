"""Compressed request bodies over real HTTP, on both backends: gzip and deflate are decoded
and stored as the plain body would be; the body limit holds for the decoded size, so a small
compression bomb is refused without inflating it; other codings are 415; a corrupt stream is
400. Refusals store nothing and are kept for inspection."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import httpx2 as httpx
import orjson
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, assert_error_shape, create_source
from tests.ingest.live import peak_rss_kib, server_on
from tests.pg import backend_params

LIMIT = 64 * 1024
pytestmark = pytest.mark.e2e  # every test here starts a real server process

BODY = orjson.dumps({"order": {"id": 7, "items": [{"sku": "a-1", "qty": 2}]}, "note": "é"})
BODY_OBJ = orjson.loads(BODY)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with server_on(request.param, tmp_path_factory, EVENTSTITCH_MAX_BODY_BYTES=str(LIMIT)) as live:
        with live.client() as http:
            create_source(http, id="hooks")
            create_source(http, id="web", kind="tracker")
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def post(
    http: httpx.Client, body: bytes, encoding: str, path: str = "/collect/order/hooks"
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    return http.post(path, content=body, headers=headers)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # the zlib format: what curl, requests and httpx send
        ("deflate", raw_deflate),  # what some senders send instead
        ("GZIP", lambda data: gzip.compress(data[:10]) + gzip.compress(data[10:])),  # 2 members
        ("identity", lambda data: data),
    ],
)
def test_a_compressed_body_is_stored_as_the_plain_body_would_be(
    http: httpx.Client, encoding: str, encode: object
) -> None:
    assert callable(encode)
    answer = post(http, encode(BODY), encoding)
    assert answer.status_code == 200, answer.text
    stored = http.get(f"/api/events/{answer.json()['id']}").json()
    assert stored["properties"] == orjson.loads(BODY)


def test_a_compressed_tracker_call_is_decoded(http: httpx.Client) -> None:
    payload = {"source": {"id": "web"}, "events": [{"type": "page-view", "properties": BODY_OBJ}]}
    answer = post(http, gzip.compress(orjson.dumps(payload)), "gzip", "/track")
    assert answer.status_code == 200, answer.text
    event_id = answer.json()["events"][0]["id"]
    assert http.get(f"/api/events/{event_id}").json()["properties"] == BODY_OBJ


def padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    return b'{"pad": "' + b"x" * (size - 11) + b'"}'


def test_the_limit_holds_for_the_decoded_size(http: httpx.Client) -> None:
    before = len(all_events(http))
    at_limit = post(http, gzip.compress(padded(LIMIT)), "gzip")
    assert at_limit.status_code == 200, at_limit.text
    # One byte more decoded, though it is far smaller than the limit on the wire.
    compressed = gzip.compress(padded(LIMIT + 1))
    assert len(compressed) < LIMIT // 10
    error = assert_error_shape(post(http, compressed, "gzip"), 413)
    assert error["errors"] == [{"field": "body", "limit": LIMIT, "content-encoding": "gzip"}]
    assert "decoded" in error["error"]
    assert len(all_events(http)) == before + 1


def test_a_compression_bomb_is_refused_without_being_inflated(
    server: LiveServer, http: httpx.Client
) -> None:
    # 50 MiB of zeros in about 50 KB: inflating it whole would cost the server 50 MiB.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(zeros) for _ in range(50)) + compressor.flush()
    assert len(bomb) < LIMIT
    post(http, gzip.compress(BODY), "gzip")  # warm the path, so what follows is the bomb's
    before_events = len(all_events(http))
    before_rss = peak_rss_kib(server)
    for _ in range(3):
        error = assert_error_shape(post(http, bomb, "gzip"), 413)
        assert error["errors"][0]["limit"] == LIMIT
    grown_kib = peak_rss_kib(server) - before_rss
    assert grown_kib < 16 * 1024, f"peak memory grew by {grown_kib} KiB for a refused bomb"
    assert len(all_events(http)) == before_events
    kept = http.get("/api/rejections", params={"reason": "body_too_large"}).json()["rejections"]
    assert kept
    assert kept[0]["errors"][0].get("content-encoding") == "gzip"


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, gzip", "deflate, br"])
def test_another_coding_is_415_naming_it_and_stores_nothing(
    http: httpx.Client, encoding: str
) -> None:
    before = len(all_events(http))
    error = assert_error_shape(post(http, gzip.compress(BODY), encoding), 415)
    assert error["errors"] == [{"field": "content-encoding", "value": encoding}]
    assert encoding in error["error"]
    assert len(all_events(http)) == before
    metrics = http.get("/metrics").text
    assert 'eventstitch_events_rejected_total{reason="unsupported_content_encoding"}' in metrics


def test_a_corrupt_stream_is_400_kept_as_sent_and_its_replay_is_refused_again(
    http: httpx.Client,
) -> None:
    before = len(all_events(http))
    truncated = gzip.compress(BODY)[:-6]
    for body in (truncated, b"not gzip at all", gzip.compress(BODY) + b"trailing"):
        error = assert_error_shape(post(http, body, "gzip"), 400)
        assert error["errors"][0]["field"] == "body"
        assert error["errors"][0]["content-encoding"] == "gzip"
    assert len(all_events(http)) == before
    kept = http.get("/api/rejections", params={"reason": "bad_content_encoding"}).json()
    assert len(kept["rejections"]) == 3
    one = kept["rejections"][-1]  # the oldest: the truncated stream
    assert one["body_size"] == len(truncated)
    assert one["headers"]["content-encoding"] == "gzip"
    replay = http.post(f"/api/rejections/{one['id']}/replay")
    assert assert_error_shape(replay, 400)["errors"][0]["content-encoding"] == "gzip"
    assert len(all_events(http)) == before


def test_a_refusal_after_decoding_keeps_the_decoded_body_and_replays_it(
    http: httpx.Client,
) -> None:
    refused = post(http, gzip.compress(BODY), "gzip", "/collect/order/later")
    assert_error_shape(refused, 404)
    kept = http.get("/api/rejections", params={"source_id": "later"}).json()["rejections"]
    assert "content-encoding" not in kept[0]["headers"]
    assert http.get(f"/api/rejections/{kept[0]['id']}").json()["body"] == BODY.decode()
    create_source(http, id="later")
    replay = http.post(f"/api/rejections/{kept[0]['id']}/replay")
    assert replay.status_code == 200, replay.text
    assert http.get(f"/api/events/{replay.json()['id']}").json()["properties"] == BODY_OBJ


def test_a_coding_not_supported_is_named_before_a_length_over_the_limit(
    http: httpx.Client,
) -> None:
    """A body in a coding the collector cannot read is 415 whatever its size: the sender's
    first problem is the coding, and it is named before the announced length is weighed."""
    error = assert_error_shape(post(http, b"x" * (LIMIT + 1), "br"), 415)
    assert error["errors"] == [{"field": "content-encoding", "value": "br"}]
    assert_error_shape(post(http, b"x" * (LIMIT + 1), "gzip"), 413)
