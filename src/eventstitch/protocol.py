"""The HTTP/1.1 protocol `serve` runs: uvicorn's httptools protocol with budgets on the head.

httptools puts no limit on a request's head: uvicorn gathers the URL and every header (and the
trailers of a chunked body) whole before the application sees any of it, so one request with a
32 MiB header costs 32 MiB or more before anything could refuse it; and a body that stops
arriving holds its connection and buffers for ever. This subclass counts while parsing:

- the request target against `EVENTSTITCH_MAX_URL_BYTES` (414),
- header fields and their bytes (names and values, trailers included) against
  `EVENTSTITCH_MAX_HEADER_COUNT` and `EVENTSTITCH_MAX_HEADER_BYTES` (431),
- bytes received that complete neither the head, nor the trailers, nor any body: what the
  parser is still gathering in memory, bounded by the head budget plus one read (431),
- the time the head takes from its first byte (from the connection's opening, for the first
  request), against `EVENTSTITCH_HEAD_TIMEOUT_SECONDS` (408; a connection that sent nothing is
  closed): without it a connection that sends nothing, or half a head, was held for ever;
- the time the body takes after the head, against `EVENTSTITCH_BODY_TIMEOUT_SECONDS` (408);
- the connections open in this process, against `EVENTSTITCH_MAX_CONNECTIONS`: a connection
  opened past it has its first request answered 503 with `Retry-After` (those open go on).

Over a budget it answers in the one error shape with `Connection: close` and closes the
connection; the application gets a disconnect, so nothing is stored.

It also runs uvicorn's proxy-headers middleware only for the requests whose head carries
`X-Forwarded-For` or `X-Forwarded-Proto`, the only headers it reads: for every other request
it would change nothing, and calling it cost about 3 µs a request (docs/benchmarks.md). Such a
header in a chunked body's trailers names nobody: a proxy sends it in the head.

An idle kept-alive connection is closed after `EVENTSTITCH_KEEP_ALIVE_SECONDS` (uvicorn's
keep-alive timeout, which `serve` sets from it), as uvicorn does, but with one timer per
connection instead of one per response: uvicorn starts a timer after
every response and cancels it when the next request arrives, which cost the no-op 8-15 % of
its requests a second here. Here the connection notes when it fell idle, and its one timer,
when due, closes it if it has been idle that long, or waits for the rest of the period.

Each request is handed to `RequestCycle` (eventstitch.request_cycle), uvicorn's cycle doing
each request's work once, and a head's timer is started only when a read leaves a head
incomplete: a head that arrives whole in one read, nearly all of them, needs none.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from eventstitch import metrics
from eventstitch.config import PREFIX, load_config
from eventstitch.errors import error_body
from eventstitch.request_cycle import RequestCycle

# The request line's method, spaces and version, and each header's `: ` and CRLF, are not in
# the budgets' counts; this much per head and per field is allowed for them in the raw bytes.
_REQUEST_LINE_FRAMING = 256
_FIELD_FRAMING = 4
# The headers uvicorn's proxy-headers middleware reads (it reads no other).
_FORWARDED_HEADERS = (b"x-forwarded-for", b"x-forwarded-proto")
# After a refusal the answer is sent and the sending side shut, and whatever the client still
# sends is read and dropped for up to this long: closing at once with unread bytes would make
# the kernel reset the connection, and the client could lose the answer it is owed.
LINGER_SECONDS = 2.0
RETRY_AFTER_SECONDS = 1
"""What a connection refused past EVENTSTITCH_MAX_CONNECTIONS is told to wait."""


@dataclass(frozen=True)
class HeadLimits:
    """The budgets of one request's head, and how long its body may take."""

    max_url_bytes: int
    max_header_bytes: int
    max_header_count: int
    head_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int

    @property
    def max_unparsed_bytes(self) -> int:
        """Raw bytes a head may take at most, framing included: beyond it the parser would be
        gathering more than any head within the budgets needs."""
        framing = _REQUEST_LINE_FRAMING + _FIELD_FRAMING * self.max_header_count
        return self.max_url_bytes + self.max_header_bytes + framing


@functools.cache
def configured_limits() -> HeadLimits:
    """The limits of this process, read once from the environment (workers read it too)."""
    config = load_config()
    return HeadLimits(
        max_url_bytes=config.max_url_bytes,
        max_header_bytes=config.max_header_bytes,
        max_header_count=config.max_header_count,
        head_timeout_seconds=config.head_timeout_seconds,
        body_timeout_seconds=config.body_timeout_seconds,
        max_connections=config.max_connections,
    )


class RequestRefused(Exception):
    """A request over one of the protocol's budgets, with its answer."""

    def __init__(self, status: int, reason: str, message: str, error: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.error = error


def _over(status: int, reason: str, what: str, limit: int, unit: str) -> RequestRefused:
    """The refusal of a request whose `what` is over `limit`, naming the setting to raise."""
    setting = {
        "url_too_long": "MAX_URL_BYTES",
        "too_many_headers": "MAX_HEADER_COUNT",
        "headers_too_large": "MAX_HEADER_BYTES",
    }[reason]
    name = PREFIX + setting
    field = "url" if reason == "url_too_long" else "headers"
    return RequestRefused(
        status,
        reason,
        f"{what} the limit of {limit} {unit} ({name})",
        {"field": field, "limit": limit, "setting": name},
    )


def _late(reason: str, part: str, field: str, timeout: float) -> RequestRefused:
    """The refusal of a request whose `part` ("head" or "body") took longer than `timeout`."""
    setting = f"{PREFIX}{part.upper()}_TIMEOUT_SECONDS"
    return RequestRefused(
        408,
        reason=reason,
        message=f"the request {part} did not arrive within {timeout:g} s ({setting})",
        error={"field": field, "limit_seconds": timeout, "setting": setting},
    )


def _crowded(limit: int) -> RequestRefused:
    """The refusal of a request on a connection opened while `limit` others were open."""
    setting = f"{PREFIX}MAX_CONNECTIONS"
    return RequestRefused(
        503,
        reason="too_many_connections",
        message=f"this server process already serves {limit} connections ({setting}); "
        f"retry after {RETRY_AFTER_SECONDS} s",
        error={"field": "connection", "limit": limit, "setting": setting},
    )


def _cancelled(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel a connection's timer, if set, and give what its slot holds next: none."""
    if timer is not None:
        timer.cancel()
    return None


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing heads over their budgets and stalled bodies."""

    cycle: RequestCycle  # every request's (see on_headers_complete)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = configured_limits()
        self._in_message = False
        self._head_done = False
        self._progressed = False
        self._unparsed_bytes = 0
        self._url_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._over_capacity = False
        # uvicorn wraps the app in its proxy-headers middleware (serve keeps its default);
        # requests without a forwarded header skip it (see the module's docstring).
        self._app_for_forwarded = self.app
        if isinstance(self.app, ProxyHeadersMiddleware):
            self._app_direct = self.app.app
        else:
            self._app_direct = self.app
        self._forwarded = False
        # Keep-alive: when the connection last fell idle (None while a request is under way),
        # and its one timer (see the module's docstring).
        self._idle_since: float | None = None
        self._keep_alive_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        # Past the cap a connection's first request is refused, so no more are served at once
        # than the cap; the ones already open are not touched (unlike uvicorn's
        # limit_concurrency, which refuses every request while the count is over).
        self._over_capacity = len(self.server_state.connections) > self.limits.max_connections
        self._start_head_timer()  # the first request's head is due from now

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, but a refusal raised by a callback below is answered
        # as itself rather than as uvicorn's plain-text 400 for a malformed request.
        if self._refused:
            return  # lingering after a refusal: read and dropped
        self._unset_keepalive_if_required()
        self._progressed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, RequestRefused):
                self._refuse(exc.__context__)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if not self._in_message:
            return
        if not self._head_done and self._head_timer is None:
            # A head left incomplete by this read is due from its first byte, about now: a
            # head that arrives whole in one read (nearly all of them) never needs a timer.
            self._start_head_timer()
        if self._progressed:
            self._unparsed_bytes = 0
        else:
            self._unparsed_bytes += len(data)
            if self._unparsed_bytes > self.limits.max_unparsed_bytes:
                self._refuse(
                    _over(
                        431,
                        "headers_too_large",
                        "the request head is larger than",
                        self.limits.max_header_bytes,
                        "bytes of headers",
                    )
                )
                return
        if self._head_done and self._body_timer is None:
            self._body_timer = self.loop.call_later(
                self.limits.body_timeout_seconds, self._body_timed_out
            )

    # The parser's callbacks do uvicorn's work themselves (its scope, its header list, its
    # request-response cycle) rather than call it, with RequestCycle in place of uvicorn's.

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        self._body_timer = _cancelled(self._body_timer)
        self._in_message = True
        self._head_done = False
        self._unparsed_bytes = 0
        self._url_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._forwarded = False

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        limit = self.limits.max_url_bytes
        if self._url_bytes > limit:
            raise _over(414, "url_too_long", "the request target is longer than", limit, "bytes")
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > self.limits.max_header_count:
            raise _over(
                431,
                "too_many_headers",
                "the request has more header fields than",
                self.limits.max_header_count,
                "fields",
            )
        if self._header_bytes > self.limits.max_header_bytes:
            raise _over(
                431,
                "headers_too_large",
                "the request headers are larger than",
                self.limits.max_header_bytes,
                "bytes",
            )
        name = name.lower()
        # llhttp keeps a value's trailing whitespace, which RFC 9110 (5.5) leaves out.
        value = value.rstrip(b" \t")
        if name in _FORWARDED_HEADERS:
            self._forwarded = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._over_capacity:
            self._head_timer = _cancelled(self._head_timer)
            raise _crowded(self.limits.max_connections)
        self._head_done = True
        self._progressed = True
        self._head_timer = _cancelled(self._head_timer)
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        if self.root_path:
            scope["path"] = self.root_path + path
            scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        else:
            scope["path"] = path
            scope["raw_path"] = raw_path
        scope["query_string"] = parsed_url.query or b""
        # uvicorn hands the request to `self.app`: the proxy-headers middleware only when it
        # has work (see the module's docstring).
        app = self._app_for_forwarded if self._forwarded else self._app_direct
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency
            or len(self.tasks) >= self.limit_concurrency
        ):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing_cycle = self.cycle
        self.cycle = RequestCycle(
            scope,
            self,
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # a pipelined request waits for the one before it to be answered
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_body(self, body: bytes) -> None:
        self._progressed = True
        if self.parser.should_upgrade() and self._should_upgrade():
            return  # (no cycle was made for an upgrade)
        cycle = self.cycle
        if cycle.response_complete:
            return
        if cycle.add_body(body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self._in_message = False
        self._progressed = True
        self._body_timer = _cancelled(self._body_timer)
        if self.parser.should_upgrade() and self._should_upgrade():
            return
        cycle = self.cycle
        if cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._body_timer = _cancelled(self._body_timer)
        self._head_timer = _cancelled(self._head_timer)
        # A timer left running would hold this protocol until it was due.
        self._keep_alive_timer = _cancelled(self._keep_alive_timer)
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when bytes arrive (cancelling its timer); here the connection is
        # only marked busy, and its timer stays.
        self._idle_since = None

    def on_response_complete(self) -> None:
        """A response went out: start the next pipelined request, or fall idle."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self._keep_alive_timer is None:
            self._keep_alive_timer = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive_due
            )

    def _keep_alive_due(self) -> None:
        """Close the connection if it has been idle for the whole timeout; else look again
        when it would have been (a busy connection, a whole timeout later)."""
        self._keep_alive_timer = None
        if self.transport.is_closing():
            return
        idle_since = self._idle_since
        if idle_since is not None:
            left = idle_since + self.timeout_keep_alive - self.loop.time()
            if left <= 0:
                self.transport.close()
                return
        else:
            left = self.timeout_keep_alive
        self._keep_alive_timer = self.loop.call_later(left, self._keep_alive_due)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.head_timeout_seconds, self._head_timed_out
            )

    def _head_timed_out(self) -> None:
        self._head_timer = None  # (a head that completed cancelled it)
        if self.transport.is_closing():
            return
        if not self._in_message:  # nothing of a request arrived: nobody to answer
            self.transport.close()
            return
        self._refuse(
            _late(
                reason="head_timeout",
                part="head",
                field="headers",
                timeout=self.limits.head_timeout_seconds,
            )
        )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._in_message or self.transport.is_closing():
            return
        self._refuse(
            _late(
                reason="body_timeout",
                part="body",
                field="body",
                timeout=self.limits.body_timeout_seconds,
            )
        )

    def _refuse(self, refusal: RequestRefused) -> None:
        """Answer the refusal and close: the application, if it started, sees a disconnect."""
        metrics.EVENTS_REJECTED.labels(refusal.reason).inc()
        cycle = self.cycle if self._head_done else None
        earlier_unanswered = (
            not self._head_done and self.cycle is not None and not self.cycle.response_complete
        )
        # A head the cycle still holds has not been written: the refusal can take its place.
        can_answer = not earlier_unanswered and (cycle is None or cycle.nothing_sent)
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self._body_timer = _cancelled(self._body_timer)
        if self.transport.is_closing():
            return
        self._refused = True
        if can_answer:
            self.transport.write(self._answer(refusal))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            # The client's own close ends it sooner (eof_received closes the transport).
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _answer(self, refusal: RequestRefused) -> bytes:
        body = error_body(refusal.status, refusal.message, [refusal.error])
        head = [STATUS_LINE[refusal.status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        if refusal.status == 503:
            head.append(b"retry-after: %d\r\n" % RETRY_AFTER_SECONDS)
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body
