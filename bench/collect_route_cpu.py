"""CPU time of the `/collect` route itself, per request, without HTTP and without the commit.

    .venv/bin/python bench/collect_route_cpu.py [--requests 30000] [--rounds 5] [--profile]

`bench/collect_throughput.py` measures the whole server against a no-op; this one isolates
what Eventstitch's own code costs on the event loop for one webhook delivery: the route reads
the body, checks the source, parses, builds the event and its answer, exactly as served. The
event writer is told to answer every event at once (the commit is the writer's work, on
another core or in another process, and is measured by the throughput bench), so the figure
is the route's CPU alone. Prints the best of `--rounds` rounds in microseconds per request;
`--profile` adds the functions that took the most time (cProfile).

To compare two revisions on a noisy machine, alternate them, for example with a worktree:

    git worktree add /tmp/before <rev>
    for i in 1 2 3; do
        PYTHONPATH=/tmp/before/src .venv/bin/python bench/collect_route_cpu.py
        .venv/bin/python bench/collect_route_cpu.py
    done
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import pstats
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

BODY = (
    b'{"url": "https://example.com/pricing", "user": "John", "email": "a@a.com",'
    b' "plan": {"name": "pro", "seats": 5}}'
)
"""The body of bench/post_event.lua, as wrk sends it."""
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-length", b"%d" % len(BODY)),
    (b"content-type", b"application/json"),
]


def scope() -> dict[str, Any]:
    """A request's scope as uvicorn builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http",
        "method": "POST",
        "path": "/collect/page-view/bench",
        "raw_path": b"/collect/page-view/bench",
        "root_path": "",
        "query_string": b"",
        "headers": list(HEADERS),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


@contextlib.asynccontextmanager
async def app_committing_at_once() -> AsyncIterator[Any]:
    """The app `serve` runs, started on a store in EVENTSTITCH_DATA_DIR, with the source
    `bench`, and its event writer answering every event at once (stored, linked to no
    profile): what is measured is the route's CPU, not the commit."""
    from eventstitch.app import create_app
    from eventstitch.sources import service as sources
    from eventstitch.sources.schemas import SourceCreate

    app = create_app()
    await app.startup()
    try:
        await sources.create(ctx=app.ctx, source_in=SourceCreate(id="bench", name="Bench"))
        loop = asyncio.get_running_loop()

        def committed_at_once(*_: Any, **__: Any) -> asyncio.Future[None]:
            done: asyncio.Future[None] = loop.create_future()
            done.set_result(None)
            return done

        app.ctx.storage.events._db.event_writer.submit_event = committed_at_once
        yield app
    finally:
        await app.shutdown()


def run_on_a_temporary_store(measure: Coroutine[Any, Any, T], prefix: str) -> T:
    """Run `measure` on uvloop with a throwaway data folder and the writer in process."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        os.environ["EVENTSTITCH_DATA_DIR"] = folder
        os.environ["EVENTSTITCH_SQLITE_WRITER"] = "THREAD"  # in-process: nothing to start
        return uvloop.run(measure)


async def measure(requests: int, rounds: int, profile: bool) -> float:
    async with app_committing_at_once() as app:
        message = {"type": "http.request", "body": BODY, "more_body": False}
        answers: list[int] = []

        async def receive() -> dict[str, Any]:
            return message

        async def send(sent: dict[str, Any]) -> None:
            if sent["type"] == "http.response.start":
                answers.append(sent["status"])

        for _ in range(2000):  # warm: caches filled, the source read once
            await app.collect(scope(), receive, send)
        if set(answers) != {200}:
            raise SystemExit(f"the route did not answer 200: {sorted(set(answers))}")
        gc.collect()
        gc.freeze()  # as `serve` does after start-up (src/eventstitch/heap.py)
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(requests):
                await app.collect(scope(), receive, send)
            best = min(best, (time.process_time() - started) / requests * 1e6)
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(requests):
                await app.collect(scope(), receive, send)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=30000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.requests <= 1_000_000 or not 1 <= args.rounds <= 50:
        parser.error("keep it bounded: 1-1 000 000 requests, 1-50 rounds")
    best = run_on_a_temporary_store(
        measure(args.requests, args.rounds, args.profile), "eventstitch-route-"
    )
    print(
        f"/collect route: {best:.2f} us of CPU per request (best of {args.rounds} x"
        f" {args.requests})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
