"""CPU time per request through the HTTP protocol and the application, without the kernel.

    .venv/bin/python bench/collect_stack_cpu.py [--requests 20000] [--rounds 5] [--profile APP]

`bench/collect_throughput.py` measures the whole server over real sockets, where the kernel's
share and a noisy neighbour move the figures by ±10-30 %. This script feeds the bytes wrk sends
(bench/post_event.lua) to a protocol object on an in-memory transport, on a uvloop loop, and
waits for each answer: what is left is the Python of an HTTP request, from the parser's
callbacks to the answer's write. It measures, in one run and alternating round by round:

- `noop on uvicorn`: bench/noop_app.py on uvicorn's own httptools protocol, the ceiling that
  issue 15 compares against;
- `noop on serve`: the same app on `serve`'s protocol (eventstitch.protocol);
- `collect on serve`: `/collect` as `serve` runs it, with the event writer answering every
  event at once (the commit is another process's work; bench/collect_throughput.py has it).

Prints the best of `--rounds` rounds of each, in microseconds of CPU per request, and the
share `noop on uvicorn / collect on serve`, which is what issue 15's ratio would be if the
kernel and the writer cost nothing. `--profile noop|collect` adds a cProfile of that app on
serve's protocol.

Times on a shared virtual machine move by ±20 % from run to run. Instructions do not:
`--only CASE` serves that case alone, so that callgrind can count it, twice with different
`--requests`, the difference divided by the difference in requests (start-up cancels out):

    for n in 200 1200; do PYTHONHASHSEED=0 valgrind --tool=callgrind \
        .venv/bin/python bench/collect_stack_cpu.py --only collect --requests $n --rounds 1 \
        2>&1 | grep "refs"; done
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

sys.path.insert(0, str(Path(__file__).resolve().parent))

BODY = (
    b'{"url": "https://example.com/pricing", "user": "John", "email": "a@a.com",'
    b' "plan": {"name": "pro", "seats": 5}}'
)
"""The body of bench/post_event.lua, as wrk sends it."""
REQUEST = (
    b"POST /collect/page-view/bench HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
) + BODY


class MemoryTransport(asyncio.Transport):
    """A connection that keeps nothing: each write completes the request under way."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: asyncio.Future[bytes] | None = None
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(bytes(data))

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


async def serve_requests(protocol: Any, transport: MemoryTransport, requests: int) -> None:
    """Feed `requests` requests one after the other, each after the last one's answer."""
    loop = asyncio.get_running_loop()
    for _ in range(requests):
        transport.answered = loop.create_future()
        protocol.data_received(REQUEST)
        answer = await transport.answered
        if not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"not answered 200: {answer[:200]!r}")
    await asyncio.sleep(0)  # the last answer's completion


def connect(app: Any, protocol_class: type[HttpToolsProtocol]) -> tuple[Any, MemoryTransport]:
    """A connection of `protocol_class` serving `app`, as uvicorn sets one up."""
    config = uvicorn.Config(
        app, loop="none", access_log=False, server_header=False, http=protocol_class
    )
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = MemoryTransport()
    protocol.connection_made(transport)
    return protocol, transport


ONLY = {"noop-uvicorn": "noop on uvicorn", "noop": "noop on serve", "collect": "collect on serve"}


async def measure(
    requests: int, rounds: int, profile: str | None, only: str | None
) -> dict[str, float]:
    from collect_route_cpu import app_committing_at_once
    from eventstitch.protocol import LimitedHttpToolsProtocol
    from noop_app import app as noop

    async with app_committing_at_once() as app:
        cases = {
            "noop on uvicorn": connect(noop, HttpToolsProtocol),
            "noop on serve": connect(noop, LimitedHttpToolsProtocol),
            "collect on serve": connect(app, LimitedHttpToolsProtocol),
        }
        if only:
            cases = {name: case for name, case in cases.items() if name == ONLY[only]}
        for protocol, transport in cases.values():  # warm: caches filled, the source read
            await serve_requests(protocol, transport, 300 if only else 2000)
        gc.collect()
        gc.freeze()  # as `serve` does after start-up (src/eventstitch/heap.py)
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(rounds):
            for name, (protocol, transport) in cases.items():
                started = time.process_time()
                await serve_requests(protocol, transport, requests)
                spent = (time.process_time() - started) / requests * 1e6
                best[name] = min(best[name], spent)
        if profile and not only:
            protocol, transport = cases[f"{profile} on serve"]
            profiler = cProfile.Profile()
            profiler.enable()
            await serve_requests(protocol, transport, requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=["noop", "collect"])
    parser.add_argument("--only", choices=sorted(ONLY), help="serve this case alone")
    args = parser.parse_args()
    if not 1 <= args.requests <= 1_000_000 or not 1 <= args.rounds <= 50:
        parser.error("keep it bounded: 1-1 000 000 requests, 1-50 rounds")
    from collect_route_cpu import run_on_a_temporary_store

    best = run_on_a_temporary_store(
        measure(args.requests, args.rounds, args.profile, args.only), "eventstitch-stack-"
    )
    for name, micros in best.items():
        print(f"{name:>18}: {micros:6.2f} us of CPU per request")
    if args.only:
        return 0
    share = best["noop on uvicorn"] / best["collect on serve"]
    print(
        f"noop on uvicorn / collect on serve: {share:.0%} (best of {args.rounds} x {args.requests})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
