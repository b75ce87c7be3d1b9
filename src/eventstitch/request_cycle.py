"""One request's ASGI exchange as `serve` runs it: uvicorn's cycle, doing less per request.

uvicorn's `RequestResponseCycle` makes an `asyncio.Event` for every request, awaits it even
when the body has arrived, copies the body twice (into a bytearray, then out of it), checks the
server's own default headers again on every response, and writes a response's head and its
body with two system calls. At 10-20k requests a second on one core those few microseconds are
a tenth of what a request costs (docs/benchmarks.md). This cycle keeps uvicorn's contract (the
same ASGI messages, the same framing and the same errors for an application that misbehaves)
and does the same work once:

- the body's chunks are kept as the parser gives them and joined once, when read;
- `receive` returns at once when the body is already there, and otherwise waits on one future;
- the head is held until the first body message, which the ASGI spec asks of a server anyway
  ("must not start sending the response until it has received at least one body event"), and
  goes out with it in one write;
- only the application's headers are checked; the server's own (the date) are its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string


class BodySignal:
    """What the cycle's `asyncio.Event` was for: the protocol sets it when body bytes, the
    body's end or a disconnect arrive, and whoever reads the body waits for it (every waiter
    wakes, as with an Event). No future is made unless a reader has to wait."""

    __slots__ = ("_loop", "_set", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)


class RequestCycle(RequestResponseCycle):
    """uvicorn's request-response cycle with the per-request work above done once; its
    `run_asgi` (the handling of an application that fails or answers nothing) is uvicorn's,
    but for a head still held."""

    def __init__(
        self, scope: Any, protocol: Any, *, expect_100_continue: bool, keep_alive: bool
    ) -> None:
        """A request of `protocol`'s connection (its transport, flow control, loop, loggers
        and server state)."""
        self.scope = scope
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.logger = protocol.logger
        self.access_logger = protocol.access_logger
        self.access_log = protocol.access_log
        self.default_headers = protocol.server_state.default_headers
        self.message_event = BodySignal(protocol.loop)  # type: ignore[assignment]
        self.on_response = protocol.on_response_complete
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue
        self.chunks: list[bytes] = []
        self.received = 0  # bytes in `chunks`, for the flow control's high-water mark
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0
        self._head: bytes | None = None  # held until the first body message

    async def run_asgi(self, app: Any) -> None:
        """uvicorn's, with the held head in mind: an app that fails before any of its answer
        was written gets a whole 500 (uvicorn would have sent the head it had started, then
        closed), and one that returns without finishing has its head written first, as
        uvicorn would have (a 204 started and never given a body is then whole)."""
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if self.nothing_sent:
                self._restart_answer()
                await self.send_500_response()
            else:
                self.transport.close()
        else:
            self._write_held_head()
            if result is not None:
                msg = "ASGI callable should return None, but returned '%s'."
                self.logger.error(msg, result)
                self.transport.close()
            elif not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self.transport.close()
        finally:
            self.on_response = lambda: None

    def _restart_answer(self) -> None:
        """Forget an answer started but not written, so another can be sent instead."""
        self._head = None
        self.response_started = False
        self.chunked_encoding = None
        self.expected_content_length = 0

    def _write_held_head(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self.waiting_for_100_continue = False
            if not self.disconnected and not self.transport.is_closing():
                self.transport.write(head)

    @property
    def nothing_sent(self) -> bool:
        """Whether nothing of the answer has been written yet (a head held counts as not)."""
        return not self.response_started or self._head is not None

    def add_body(self, body: bytes) -> int:
        """Keep a chunk of the request body; the bytes kept so far."""
        self.chunks.append(body)
        self.received += len(body)
        return self.received

    async def receive(self) -> Any:
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            signal = self.message_event
            if not signal.is_set():
                await signal.wait()
            signal.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.received = 0
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            self.response_started = True
            # Until the head is written the client may still be owed its 100 Continue.
            self._head = self._response_head(message)
            return
        if self.response_complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, after response already "
                "completed."
            )
        if message["type"] != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
            )
        body: bytes = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            data = b""
        elif self.chunked_encoding:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            data = body
        head = self._head
        if head is not None:
            self._head = None
            self.waiting_for_100_continue = False
            data = head + data
        if data:
            self.transport.write(data)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _response_head(self, message: Any) -> bytes:
        """The status line and headers, as uvicorn writes them (its checks, its framing)."""
        status_code = message["status"]
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status_code,
            )
        content = [STATUS_LINE[status_code]]
        for name, value in self.default_headers:  # the server's own, set once at start-up
            content += (name, b": ", value, b"\r\n")
        has_connection_close = False
        for name, value in message.get("headers", ()):
            if HEADER_RE.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            if HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status_code not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)
