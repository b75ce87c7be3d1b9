"""The HTTP protocol's budgets over real HTTP, on both backends: the request target (414), the
header count and bytes, chunked trailers included (431), the body's arrival time (408), and a
500 that says it closes its connection. Requests are written byte by byte on a socket, so the
counts at the limit are exact."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, create_source, start_server, stored_events
from tests.pg import backend_params, fresh_database_url

pytestmark = pytest.mark.e2e  # every test here starts a real server process

MAX_URL_BYTES = 16384  # the defaults: tested as shipped
MAX_HEADER_BYTES = 32768
MAX_HEADER_COUNT = 100
SOCKET_SECONDS = 10  # a bound on every wait below, never an expected duration


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    """One server per backend for the module, its body timeout lowered to 1 s, and the
    database URL (empty for the embedded file)."""
    folder = tmp_path_factory.mktemp(f"protocol-{request.param}")
    env = {"EVENTSTITCH_BODY_TIMEOUT_SECONDS": "1", "EVENTSTITCH_HEAD_TIMEOUT_SECONDS": "1"}
    if request.param == "sqlite":
        live = start_server(folder / "data", folder / "server.log", **env)
        try:
            yield live, ""
        finally:
            live.stop()
        return
    with fresh_database_url() as url:
        live = start_server(
            folder / "data", folder / "server.log", EVENTSTITCH_DATABASE_URL=url, **env
        )
        try:
            yield live, url
        finally:
            live.stop()


@pytest.fixture
def source(server: tuple[LiveServer, str]) -> str:
    with server[0].client() as client:
        return str(create_source(client, kind="webhook")["id"])


@pytest.fixture
def tracker(server: tuple[LiveServer, str]) -> str:
    with server[0].client() as client:
        return str(create_source(client, kind="tracker")["id"])


def _port(live: LiveServer) -> int:
    return int(live.url.rsplit(":", 1)[1])


def exchange(live: LiveServer, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """Send raw bytes and read one answer: status, headers, body, and whether the server then
    closed the connection (an answer that keeps it open is read no further)."""
    with socket.create_connection(("127.0.0.1", _port(live)), timeout=SOCKET_SECONDS) as sock:
        sock.sendall(request)
        status, headers, body, _ = read_answer(sock, b"")
        closed = False
        if headers.get("connection") == "close":
            closed = sock.recv(65536) == b""  # the server's end of the connection
        return status, headers, body, closed


def read_answer(sock: socket.socket, received: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """One answer off the connection, `received` being what was read of it already: status,
    headers (names in lower case), body, and the bytes read past it."""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer after {received!r}"
        received += chunk
    head, rest = received.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the answer"
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length], rest[length:]


def post(target: str, fields: list[tuple[str, str]], body: bytes = b"{}") -> bytes:
    """A POST with exactly these header fields besides Content-Length."""
    head = [f"POST {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in fields]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def header_bytes(fields: list[tuple[str, str]], body: bytes = b"{}") -> int:
    """What the budget counts of `post`'s head: every name and value, Content-Length included."""
    every = [*fields, ("Content-Length", str(len(body)))]
    return sum(len(name) + len(value) for name, value in every)


def events_of(live: LiveServer, source_id: str) -> list[dict[str, Any]]:
    with live.client() as client:
        return stored_events(client, source_id=source_id)


def assert_refused(
    answer: tuple[int, dict[str, str], bytes, bool], status: int, setting: str
) -> None:
    """The one error shape with `status`, naming the setting, and the connection closed."""
    code, headers, body, closed = answer
    assert code == status, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert closed, "the connection was left open after the refusal"
    error = orjson.loads(body)
    assert set(error) == {"ok", "error", "errors", "status"}
    assert error["ok"] is False
    assert error["status"] == status
    assert setting in error["error"]
    assert error["errors"][0]["setting"] == setting


def test_headers_at_the_byte_budget_are_stored_and_one_byte_over_is_431(
    server: tuple[LiveServer, str], source: str
) -> None:
    live, _ = server
    fields = [("Host", "x"), ("Content-Type", "application/json"), ("X-Pad", "")]
    pad = MAX_HEADER_BYTES - header_bytes(fields)
    fields[-1] = ("X-Pad", "p" * pad)
    assert header_bytes(fields) == MAX_HEADER_BYTES
    code, _, body, _ = exchange(live, post(f"/collect/at-limit/{source}", fields))
    assert code == 200, body
    stored = events_of(live, source)
    assert [e["context"]["headers"]["x-pad"] for e in stored] == ["p" * pad]

    fields[-1] = ("X-Pad", "p" * (pad + 1))
    answer = exchange(live, post(f"/collect/over-limit/{source}", fields))
    assert_refused(answer, 431, "EVENTSTITCH_MAX_HEADER_BYTES")
    assert len(events_of(live, source)) == 1


def test_header_count_at_the_budget_is_stored_and_one_more_field_is_431(
    server: tuple[LiveServer, str], source: str
) -> None:
    live, _ = server
    fields = [("Host", "x")] + [(f"X-F{i}", "v") for i in range(MAX_HEADER_COUNT - 2)]
    assert len(fields) + 1 == MAX_HEADER_COUNT  # and Content-Length
    code, _, body, _ = exchange(live, post(f"/collect/at-limit/{source}", fields))
    assert code == 200, body

    fields.append(("X-One-More", "v"))
    answer = exchange(live, post(f"/collect/over-limit/{source}", fields))
    assert_refused(answer, 431, "EVENTSTITCH_MAX_HEADER_COUNT")
    assert [e["type"] for e in events_of(live, source)] == ["at-limit"]


def test_request_target_at_the_budget_is_stored_and_one_byte_over_is_414(
    server: tuple[LiveServer, str], source: str
) -> None:
    live, _ = server
    path = f"/collect/at-limit/{source}?pad="
    target = path + "q" * (MAX_URL_BYTES - len(path))
    code, _, body, _ = exchange(live, post(target, [("Host", "x")]))
    assert code == 200, body
    assert [len(e["context"]["query"]) for e in events_of(live, source)] == [
        MAX_URL_BYTES - len(path) + len("pad=")
    ]

    answer = exchange(live, post(target.replace("at-limit", "over-limit") + "q", [("Host", "x")]))
    assert_refused(answer, 414, "EVENTSTITCH_MAX_URL_BYTES")
    assert [e["type"] for e in events_of(live, source)] == ["at-limit"]


def chunked_with_trailer(target: str, trailer_value: str) -> bytes:
    """A chunked POST of `{}` whose last chunk carries one trailer field, `X-Trail`."""
    return (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"2\r\n{{}}\r\n0\r\nX-Trail: {trailer_value}\r\n\r\n"
    ).encode("latin-1")


def test_trailers_count_against_the_header_budget(
    server: tuple[LiveServer, str], source: str
) -> None:
    live, _ = server
    head = len("Host") + len("x") + len("Transfer-Encoding") + len("chunked") + len("X-Trail")
    fits = "t" * (MAX_HEADER_BYTES - head)
    code, _, body, _ = exchange(live, chunked_with_trailer(f"/collect/at-limit/{source}", fits))
    assert code == 200, body

    over = chunked_with_trailer(f"/collect/over-limit/{source}", fits + "t")
    assert_refused(exchange(live, over), 431, "EVENTSTITCH_MAX_HEADER_BYTES")
    assert [e["type"] for e in events_of(live, source)] == ["at-limit"]


def peak_rss_kib(live: LiveServer) -> int:
    """The server process's peak resident memory (with one worker, uvicorn serves in it)."""
    status = Path(f"/proc/{live.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def send_huge(live: LiveServer, request_start: bytes, size: int) -> None:
    """Send `request_start` and then `size` bytes of one field, as far as the server reads."""
    block = b"h" * (1 << 20)
    with socket.create_connection(("127.0.0.1", _port(live)), timeout=SOCKET_SECONDS) as sock:
        try:
            sock.sendall(request_start)
            for _ in range(size // len(block)):
                sock.sendall(block)
            sock.sendall(b"\r\n\r\n")
            while sock.recv(65536):
                pass
        except OSError:
            pass  # refused and closed while the rest was still being sent: what is wanted


PEAK_GROWTH_BOUND_KIB = 16 * 1024


def test_a_32_mib_header_url_or_trailer_leaves_peak_memory_within_16_mib(
    server: tuple[LiveServer, str], source: str
) -> None:
    live, _ = server
    exchange(live, post(f"/collect/warm-up/{source}", [("Host", "x")]))
    before = peak_rss_kib(live)
    size = 32 << 20
    send_huge(live, f"POST /collect/big/{source} HTTP/1.1\r\nX-Big: ".encode(), size)
    send_huge(live, f"GET /collect/big/{source}?a=".encode(), size)
    chunked = f"POST /collect/big/{source} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
    send_huge(live, f"{chunked}\r\n\r\n2\r\n{{}}\r\n0\r\nX-Trail: ".encode(), size)
    growth = peak_rss_kib(live) - before
    print(f"peak RSS {before} KiB before, grew by {growth} KiB after three 32 MiB heads")
    assert growth < PEAK_GROWTH_BOUND_KIB, f"peak memory grew by {growth} KiB"
    assert [e["type"] for e in events_of(live, source)] == ["warm-up"]


@pytest.mark.parametrize("route", ["collect", "track", "api"])
def test_a_stalled_body_is_answered_408_and_closed_and_stores_nothing(
    server: tuple[LiveServer, str], source: str, tracker: str, route: str
) -> None:
    live, _ = server
    target, fields = {
        "collect": (f"/collect/stalled/{source}", [("Host", "x")]),
        "track": ("/track", [("Host", "x"), ("Content-Type", "application/json")]),
        "api": (
            "/api/sources",
            [("Host", "x"), ("Authorization", "Bearer test-token-0123456789")],
        ),
    }[route]
    with live.client() as client:
        sources_before = client.get("/api/sources").json()["sources"]
    head = post(target, fields, b"x" * 100)[:-100]
    answer = exchange(live, head + b'{"a":')  # 5 of the 100 bytes announced, then silence
    assert_refused(answer, 408, "EVENTSTITCH_BODY_TIMEOUT_SECONDS")
    assert events_of(live, source) == []
    assert events_of(live, tracker) == []
    with live.client() as client:
        assert client.get("/api/sources").json()["sources"] == sources_before


def test_a_stalled_head_is_answered_408_and_a_silent_connection_closed(
    server: tuple[LiveServer, str], source: str
) -> None:
    """The head budget in time (1 s here): half a head and then silence is answered 408 in the
    error shape and closed, nothing stored; a connection that sends nothing at all is closed;
    a head written in pieces that arrive within the budget is served."""
    live, _ = server
    whole = post(f"/collect/slow-head/{source}", [("Host", "x"), ("X-Note", "slow")])
    assert_refused(exchange(live, whole[:30]), 408, "EVENTSTITCH_HEAD_TIMEOUT_SECONDS")

    address = ("127.0.0.1", _port(live))
    with socket.create_connection(address, timeout=SOCKET_SECONDS) as silent:
        assert silent.recv(65536) == b"", "a connection that sent nothing was kept"

    with socket.create_connection(address, timeout=SOCKET_SECONDS) as sock:
        for start in range(0, 60, 20):  # the head in three pieces, 0.2 s apart
            sock.sendall(whole[start : start + 20])
            time.sleep(0.2)
        sock.sendall(whole[60:])
        assert read_answers(sock, 1) == [200]
    assert [event["type"] for event in events_of(live, source)] == ["slow-head"]


def break_events_table(database_url: str, data_dir: Path) -> None:
    """Damage what `GET /api/events` reads, behind the server's back: a real 500."""
    if not database_url:
        with sqlite3.connect(data_dir / "eventstitch.db") as conn:
            conn.execute("UPDATE events SET properties = '{not json'")
        return
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE events RENAME TO events_moved")


def repair_events_table(database_url: str, data_dir: Path) -> None:
    if not database_url:
        with sqlite3.connect(data_dir / "eventstitch.db") as conn:
            conn.execute("UPDATE events SET properties = '{}'")
        return
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE events_moved RENAME TO events")


def test_a_500_says_connection_close_and_the_next_request_succeeds(
    server: tuple[LiveServer, str], source: str
) -> None:
    live, database_url = server
    with live.client() as client:
        assert client.post(f"/collect/before/{source}", json={}).status_code == 200
        break_events_table(database_url, live.data_dir)
        try:
            failed = client.get("/api/events", params={"source_id": source})
            assert failed.status_code == 500, failed.text
            assert failed.headers["connection"] == "close"
            assert failed.json()["error"] == "internal error"
            # The same client, whose connection the server closed: a new one, no error.
            assert client.get("/health").status_code == 200
        finally:
            repair_events_table(database_url, live.data_dir)
        assert client.get("/api/events", params={"source_id": source}).status_code == 200


def test_a_trusted_proxy_names_the_client_and_the_next_request_on_its_connection_does_not(
    server: tuple[LiveServer, str], source: str
) -> None:
    """`serve` trusts a proxy on 127.0.0.1 (uvicorn's default): its `X-Forwarded-For` names
    the client stored with the event, whatever the header's case. The middleware that reads it
    runs only for requests that carry it, so the next request on the same kept-alive
    connection, without the header, keeps the socket's own address."""
    live = server[0]
    sent = [
        {"X-Forwarded-For": "203.0.113.9"},
        {},
        {"x-forwarded-for": "198.51.100.7, 127.0.0.1"},
        {"X-Forwarded-Proto": "https"},
    ]
    with live.client() as client:
        for number, headers in enumerate(sent):
            response = client.post(
                f"/collect/proxied/{source}", json={"n": number}, headers=headers
            )
            assert response.status_code == 200, response.text
        events = stored_events(client, source_id=source, type="proxied")
    clients = {event["properties"]["n"]: event["context"]["client"] for event in events}
    assert clients == {0: "203.0.113.9", 1: "127.0.0.1", 2: "198.51.100.7", 3: "127.0.0.1"}


def test_answers_do_not_name_the_server_software(
    server: tuple[LiveServer, str], source: str
) -> None:
    """Neither an event's answer, nor the API's, nor a refusal of the protocol's own says
    which HTTP server runs (uvicorn's default `server` header is off); each still has a
    `date`."""
    live = server[0]
    with live.client() as client:
        answers = [
            client.post(f"/collect/quiet/{source}", json={"a": 1}),
            client.get("/api/sources"),
            client.post("/collect/quiet/no-such-source", json={}),
        ]
    status, head, _, _ = exchange(
        live, b"GET /" + b"a" * (MAX_URL_BYTES + 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert [answer.status_code for answer in answers] + [status] == [200, 200, 404, 414]
    for headers in [dict(answer.headers) for answer in answers] + [head]:
        assert "server" not in {name.lower() for name in headers}, headers
        assert "date" in {name.lower() for name in headers}, headers


def read_answers(sock: socket.socket, count: int) -> list[int]:
    """The statuses of `count` answers read off one connection, in order."""
    received, statuses = b"", []
    for _ in range(count):
        status, _, _, received = read_answer(sock, received)
        statuses.append(status)
    return statuses


def test_pipelined_requests_each_keep_their_own_forwarded_client(
    server: tuple[LiveServer, str], source: str
) -> None:
    """Requests written back to back in one packet (HTTP/1.1 pipelining) are queued by uvicorn
    with the app chosen for each: only those whose head names a forwarded client get it. A
    forwarded header in a chunked body's trailers names nobody."""
    live = server[0]
    target = f"/collect/pipelined/{source}"
    requests = [
        post(target, [("Host", "x"), ("X-Forwarded-For", "203.0.113.10")], b'{"n": 0}'),
        post(target, [("Host", "x")], b'{"n": 1}'),
        post(target, [("Host", "x"), ("x-forwarded-for", "203.0.113.12")], b'{"n": 2}'),
        (
            f"POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            '8\r\n{"n": 3}\r\n0\r\nX-Forwarded-For: 203.0.113.13\r\n\r\n'
        ).encode("latin-1"),
    ]
    with socket.create_connection(("127.0.0.1", _port(live)), timeout=SOCKET_SECONDS) as sock:
        sock.sendall(b"".join(requests))
        assert read_answers(sock, len(requests)) == [200] * len(requests)
    clients = {
        event["properties"]["n"]: event["context"]["client"]
        for event in events_of(live, source)
        if event["type"] == "pipelined"
    }
    assert clients == {0: "203.0.113.10", 1: "127.0.0.1", 2: "203.0.113.12", 3: "127.0.0.1"}


KEEP_ALIVE_SECONDS = 2  # EVENTSTITCH_KEEP_ALIVE_SECONDS, lowered from 5 for the test


@pytest.fixture
def kept_alive_server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path / "data",
        tmp_path / "server.log",
        EVENTSTITCH_KEEP_ALIVE_SECONDS=str(KEEP_ALIVE_SECONDS),
    )
    try:
        yield live
    finally:
        live.stop()


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout_and_a_busy_one_is_not(
    kept_alive_server: LiveServer,
) -> None:
    """A connection that keeps sending requests stays open past the keep-alive timeout (each
    request on it is answered, over one connection); one idle for less than the timeout is
    still served; one left idle is closed by the server. The waits below are bounds."""
    live_server = kept_alive_server
    with live_server.client() as client:
        source = create_source(client, kind="webhook")["id"]
    target = f"/collect/kept/{source}"
    address = ("127.0.0.1", _port(live_server))
    sent = 0
    with socket.create_connection(address, timeout=SOCKET_SECONDS) as sock:

        def one_request() -> None:
            nonlocal sent
            sock.sendall(post(target, [("Host", "x")], b'{"n": %d}' % sent))
            assert read_answers(sock, 1) == [200]
            sent += 1

        busy_until = time.monotonic() + KEEP_ALIVE_SECONDS + 2
        while time.monotonic() < busy_until:
            one_request()
            time.sleep(0.5)
        time.sleep(KEEP_ALIVE_SECONDS / 2)  # idle, but not for the whole timeout
        one_request()
        sock.settimeout(KEEP_ALIVE_SECONDS * 3)
        assert sock.recv(65536) == b"", "the idle connection was not closed by the server"
    assert len(events_of(live_server, source)) == sent


def test_a_connection_past_the_cap_is_told_to_retry_and_those_open_go_on(tmp_path: Path) -> None:
    """With EVENTSTITCH_MAX_CONNECTIONS=2, two open connections are served; a third gets 503
    with Retry-After in the error shape and is closed, nothing stored from it; the two go on
    being served, and once they are closed a new connection is served again."""
    live = start_server(tmp_path / "data", tmp_path / "server.log", EVENTSTITCH_MAX_CONNECTIONS="2")
    try:
        with live.client() as client:
            source = create_source(client, kind="webhook")["id"]
        target = f"/collect/capped/{source}"
        address = ("127.0.0.1", _port(live))
        with (
            socket.create_connection(address, timeout=SOCKET_SECONDS) as first,
            socket.create_connection(address, timeout=SOCKET_SECONDS) as second,
        ):
            for n, sock in enumerate((first, second)):  # at the cap
                sock.sendall(post(target, [("Host", "x")], b'{"n": %d}' % n))
                assert read_answers(sock, 1) == [200]
            with socket.create_connection(address, timeout=SOCKET_SECONDS) as third:  # past it
                third.sendall(post(target, [("Host", "x")], b'{"n": 99}'))
                status, headers, body, _ = read_answer(third, b"")
                closed = third.recv(65536) == b""
                assert_refused((status, headers, body, closed), 503, "EVENTSTITCH_MAX_CONNECTIONS")
                assert headers["retry-after"] == "1"
                assert orjson.loads(body)["errors"][0]["limit"] == 2
            first.sendall(post(target, [("Host", "x")], b'{"n": 2}'))  # those open go on
            assert read_answers(first, 1) == [200]
        deadline = time.monotonic() + SOCKET_SECONDS  # the server sees the closes soon after
        while True:
            with socket.create_connection(address, timeout=SOCKET_SECONDS) as fresh:
                fresh.sendall(post(target, [("Host", "x")], b'{"n": 3}'))
                status, _, _, _ = read_answer(fresh, b"")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
        assert sorted(e["properties"]["n"] for e in events_of(live, source)) == [0, 1, 2, 3]
    finally:
        live.stop()
