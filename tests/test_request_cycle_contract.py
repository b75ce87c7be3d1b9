"""`serve`'s protocol and request cycle with ASGI apps that misbehave or push the contract,
driven in process on an in-memory connection (the app's side is what matters here, and
Eventstitch's own routes never do these things): an app failing after starting its answer,
one returning without a body, `Expect: 100-continue` with the answer started first, two
readers waiting on one body, and a body that stalls behind a started answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from eventstitch.protocol import LimitedHttpToolsProtocol, configured_limits

App = Any


class RecordingTransport(asyncio.Transport):
    """A connection that keeps what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


@pytest.fixture(autouse=True)
def _short_body_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EVENTSTITCH_BODY_TIMEOUT_SECONDS", "0.2")
    configured_limits.cache_clear()
    yield
    configured_limits.cache_clear()


def connect(app: App) -> tuple[LimitedHttpToolsProtocol, RecordingTransport]:
    config = uvicorn.Config(
        app, loop="none", access_log=False, server_header=False, log_level="critical"
    )
    config.load()
    protocol = LimitedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


def in_loop(case: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """A test of `case`, run on its own event loop."""

    def test() -> None:
        asyncio.run(case())

    test.__name__, test.__doc__ = case.__name__, case.__doc__
    return test


async def settle(seconds: float = 0.05) -> None:
    """Let the app's task run as far as it can."""
    await asyncio.sleep(seconds)


def status_of(written: bytes) -> int:
    return int(written.split(b" ", 2)[1])


@in_loop
async def test_an_app_failing_after_starting_its_answer_gets_a_whole_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("failed after the start")

    protocol, transport = connect(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    assert status_of(transport.written) == 500, transport.written
    assert transport.written.count(b"HTTP/1.1") == 1  # not the 200's head and then a 500
    assert transport.written.endswith(b"Internal Server Error")


@in_loop
async def test_an_answer_started_and_never_given_a_body_has_its_head_written() -> None:
    """As uvicorn does: the head goes out (a 204 is then whole) and the connection closes."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})

    protocol, transport = connect(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 204 No Content\r\n"), transport.written
    assert transport.written.endswith(b"\r\n\r\n")
    assert transport.closed


@in_loop
async def test_100_continue_is_sent_when_the_app_reads_after_starting_its_answer() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        message = await receive()
        await send({"type": "http.response.body", "body": message["body"][:2]})

    protocol, transport = connect(app)
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    await settle()
    assert transport.written == b"HTTP/1.1 100 Continue\r\n\r\n"  # and no head before the body
    protocol.data_received(b"okay")
    await settle()
    final = transport.written.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert status_of(final) == 200
    assert final.endswith(b"\r\n\r\nok")


@in_loop
async def test_every_reader_waiting_on_the_body_wakes_on_a_disconnect() -> None:
    got: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        first, second = await asyncio.gather(receive(), receive())
        got.extend([first["type"], second["type"]])

    protocol, _ = connect(app)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    await settle()
    protocol.connection_lost(None)
    await settle()
    assert got == ["http.disconnect", "http.disconnect"]


@in_loop
async def test_a_body_stalled_behind_a_started_answer_is_answered_408() -> None:
    """Nothing of the started answer was written, so the refusal takes its place."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass  # the rest of the body, which never comes

    protocol, transport = connect(app)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
    await settle(0.5)  # past the 0.2 s body timeout
    assert status_of(transport.written) == 408, transport.written
    assert b"EVENTSTITCH_BODY_TIMEOUT_SECONDS" in transport.written
