"""`serve`'s request cycle (eventstitch.request_cycle) over real HTTP, written byte by byte on
a socket: a body in pieces (chunked, or past the flow control's high-water mark) is stored
whole, `Expect: 100-continue` is honoured, pipelined requests are answered in order with their
own bodies, a HEAD answer has a head and no body, and a stalled head on a kept-alive
connection is still answered 408."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import LiveServer, create_source, start_server, stored_events
from tests.test_protocol_limits import SOCKET_SECONDS, assert_refused, post, read_answer

pytestmark = pytest.mark.e2e  # every test here starts a real server process

HIGH_WATER = 65536  # uvicorn's flow control pauses reading past this many unread body bytes


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("cycle")
    server = start_server(
        folder / "data", folder / "server.log", EVENTSTITCH_HEAD_TIMEOUT_SECONDS="1"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def source(live: LiveServer) -> str:
    with live.client() as client:
        return str(create_source(client, kind="webhook")["id"])


def connect(live: LiveServer) -> socket.socket:
    port = int(live.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=SOCKET_SECONDS)


def stored(live: LiveServer, source: str) -> list[dict[str, object]]:
    with live.client() as client:
        return stored_events(client, source_id=source)


@pytest.mark.parametrize("apart", [True, False], ids=["chunks-apart", "chunks-together"])
def test_a_chunked_body_sent_in_pieces_is_stored_whole(
    live: LiveServer, source: str, apart: bool
) -> None:
    """Chunks read one at a time, or several in one read (the route then reads them as one
    message), make up the body in order."""
    body = orjson.dumps({"order": "A-1", "items": ["x" * 50, "y" * 50], "total": 12.5})
    pieces = [body[:7], body[7:60], body[60:]]
    head = (
        f"POST /collect/chunked/{source} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunks = [b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces]
    with connect(live) as sock:
        if apart:
            sock.sendall(head)
            for chunk in chunks:  # each chunk its own write, a moment apart
                time.sleep(0.05)
                sock.sendall(chunk)
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(head + b"".join(chunks) + b"0\r\n\r\n")
        status, _, answer, _ = read_answer(sock, b"")
    assert status == 200, answer
    [event] = stored(live, source)
    assert event["properties"] == orjson.loads(body)


def test_a_body_past_the_flow_control_mark_is_stored_whole(live: LiveServer, source: str) -> None:
    """Reading pauses past 64 KiB of unread body and resumes when the route reads it: a
    300 KiB body written in 16 KiB pieces arrives whole."""
    body = orjson.dumps({"blob": "z" * (300 * 1024)})
    assert len(body) > 4 * HIGH_WATER
    request = post(f"/collect/large/{source}", [("Host", "x")], body)
    with connect(live) as sock:
        for start in range(0, len(request), 16384):
            sock.sendall(request[start : start + 16384])
        status, _, answer, _ = read_answer(sock, b"")
    assert status == 200, answer
    [event] = stored(live, source)
    assert event["properties"] == {"blob": "z" * (300 * 1024)}


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    live: LiveServer, source: str
) -> None:
    body = b'{"asked": "first"}'
    head = (
        f"POST /collect/expecting/{source} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(live) as sock:
        sock.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk, "closed before answering the expectation"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        assert stored(live, source) == []  # nothing stored before the body
        sock.sendall(body)
        status, _, answer, _ = read_answer(sock, interim.split(b"\r\n\r\n", 1)[1])
    assert status == 200, answer
    assert [e["properties"] for e in stored(live, source)] == [{"asked": "first"}]


def test_pipelined_requests_are_answered_in_order_each_with_its_own_body(
    live: LiveServer, source: str
) -> None:
    requests = [
        post(f"/collect/piped-{n}/{source}", [("Host", "x")], orjson.dumps({"n": n}))
        for n in range(3)
    ]
    with connect(live) as sock:
        sock.sendall(b"".join(requests))  # one write: the three arrive together
        received, ids = b"", []
        for _ in requests:
            status, _, answer, received = read_answer(sock, received)
            assert status == 200, answer
            ids.append(orjson.loads(answer)["id"])
    by_id = {event["id"]: event for event in stored(live, source)}
    assert [by_id[i]["type"] for i in ids] == ["piped-0", "piped-1", "piped-2"]
    assert [by_id[i]["properties"] for i in ids] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_head_answer_has_no_body_and_its_connection_goes_on(live: LiveServer) -> None:
    """A HEAD request is answered with the head the GET would have, Content-Length included,
    and no body bytes: the next answer on the connection starts right after the head."""
    with connect(live) as sock:
        sock.sendall(
            b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        received = b""
        while received.count(b"\r\n\r\n") < 2:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {received!r}"
            received += chunk
        head, rest = received.split(b"\r\n\r\n", 1)
        declared = [line for line in head.lower().split(b"\r\n") if b"content-length" in line]
        assert declared, head
        assert int(declared[0].split(b":")[1]) > 0, head
        assert rest.startswith(b"HTTP/1.1 200"), rest[:100]  # no body bytes in between
        status, _, body, _ = read_answer(sock, rest)
    assert status == 200
    assert orjson.loads(body)["ok"] is True


def test_a_stalled_head_after_a_served_request_is_answered_408(
    live: LiveServer, source: str
) -> None:
    """The head's budget (1 s here) counts for every request on a kept-alive connection, not
    only its first: half a second head, then silence, is refused and nothing more stored."""
    served = post(f"/collect/first/{source}", [("Host", "x")])
    stalled = post(f"/collect/second/{source}", [("Host", "x"), ("X-Note", "slow")])
    with connect(live) as sock:
        sock.sendall(served)
        status, _, _, received = read_answer(sock, b"")
        assert status == 200
        sock.sendall(stalled[:30])
        status, headers, body, _ = read_answer(sock, received)
        closed = sock.recv(65536) == b""
    assert_refused((status, headers, body, closed), 408, "EVENTSTITCH_HEAD_TIMEOUT_SECONDS")
    assert [event["type"] for event in stored(live, source)] == ["first"]


def test_a_websocket_upgrade_as_a_connections_first_request_is_refused_by_the_app(
    live: LiveServer,
) -> None:
    """No route takes a websocket, and the app says so (403), as on a later request: the
    upgrade is not taken for a malformed request (it was a 400)."""
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with connect(live) as sock:
        sock.sendall(upgrade)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, "closed without an answer"
            received += chunk
    assert received.startswith(b"HTTP/1.1 403"), received[:200]
