"""Keeps the insight segments fresh from inside `serve`: every
EVENTSTITCH_COLUMNAR_REFRESH_SECONDS, one process per segments folder writes the events sealed
since the last round (`segments.rebuild`): the hours sealed, then a part of the open hour.

**One writer per folder, elected per round.** Each round takes an exclusive, non-blocking
`flock` on `<segments folder>/writer.lock`; a process that finds it taken skips the round
(another worker is writing). The lock is held for one round only, not for the life of the
process, for three reasons:
- `eventstitch insights rebuild` (`--from-scratch` after deleting or importing events) can run
  while `serve` does: it waits for the round in progress, at most one round, then writes.
- When the writing worker dies, another takes over at its next round with nothing to hand over.
- The lock lives exactly as long as the writes. The round runs in a child process that holds
  the lock itself (the locked descriptor is passed to it), so a child left running by a
  server killed with SIGKILL keeps the folder until it finishes; a restarted server cannot
  start a second writer beside it.
With N workers each tries once a round; the losers skip, and the next winner finds nothing
left to write, which costs one rollup query.

**Off the event loop.** The round runs in a child process by default
(EVENTSTITCH_COLUMNAR_REFRESH_IN=process): the rebuild is mostly Python work (rows to
records, records to JSON) plus DuckDB, and in a thread the Python part holds the same
interpreter lock as ingest; a process also returns DuckDB's memory to the system when it
exits and cannot take the server down if it fails. `thread` runs it on a thread of this
process, with its own event loop and its own storage connections: no extra process, but
measured under load (docs/benchmarks.md) /collect kept 35-52 % of its throughput with a round
running in a thread, 90-99 % with it in a child process at nice 19 that paces itself (PAUSE).
Either way a failing round is logged and the next round tries again.

`flock` is advisory and only sure on a local file system (on NFS it may not be enforced), so
machines do not share a segments folder: each writes its own (docs/running.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import sys
import threading
import time

import orjson

from eventstitch.columnar import segments
from eventstitch.columnar.lock import holder, writer_lock
from eventstitch.config import Config
from eventstitch.context import AppContext
from eventstitch.storage import open_storage

log = logging.getLogger(__name__)

STDERR_TAIL = 2000
"""How much of a failed child's stderr the log keeps."""
NICENESS = 19
"""The child's CPU priority, the lowest: it takes only the CPU ingest leaves idle. Under
sustained full load the segments lag, and answers stay exact from the store past them, only
slower."""
PAUSE = 3.0
"""After each hour the child sleeps this many times as long as the hour took, so it works a
quarter of the time at most. Nice does not reach what else a round uses: on PostgreSQL the
database's own process does most of the reading, at normal priority; on SQLite the child's
file writes share the disk with the commits, which wait on fsync. Measured in
docs/benchmarks.md during a from-scratch rewrite under load. A first build or `--from-scratch`
round takes four times as long; the CLI does not pause."""


IDLE_ROUND_SECONDS = 60.0
"""With no event received past the checkpoint a round is skipped (`segments.pending`), but one
still runs this long after the last: it checks the last parts against the store for a commit
that came late behind the checkpoint (segments.RECHECK_MS), and seals what is left to seal."""


class Stopped(Exception):
    """A round in a thread told to stop (the server is shutting down); raised between hours."""


async def rebuild_with_own_storage(
    config: Config, stop: threading.Event | None = None, pause: float = 0.0
) -> tuple[int, int | None]:
    """One rebuild on storage opened for it (the caller's is bound to another event loop or
    process); how many segments were written and the checkpoint after. With `stop`, it ends
    after the hour being written once `stop` is set (a thread cannot be killed). After each
    hour it sleeps `pause` times as long as that hour took (nothing else runs on this loop)."""
    last = time.monotonic()

    def progress(done: int, total: int) -> None:
        nonlocal last
        if stop is not None and stop.is_set():
            raise Stopped(f"stopped after {done} of {total} hours")
        if pause:
            time.sleep((time.monotonic() - last) * pause)
        last = time.monotonic()

    ctx = AppContext.build(config, open_storage(config))
    await ctx.storage.start()
    try:
        written = await segments.rebuild(ctx=ctx, progress=progress)
        return written, segments.checkpoint(ctx)
    finally:
        await ctx.storage.close()


class Refresher:
    """The background task of one serving process; started and closed by the app's lifespan."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.interval = ctx.config.columnar_refresh_seconds
        self.in_thread = ctx.config.columnar_refresh_in == "THREAD"
        self._task: asyncio.Task[None] | None = None
        self._child: asyncio.subprocess.Process | None = None
        self._stop = threading.Event()
        self._last_round = time.monotonic()

    def start(self) -> None:
        """Start the rounds, the first one interval from now (so starting stays light, and a
        short-lived process never writes); nothing when the setting is 0."""
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._rounds())

    async def close(self) -> None:
        """Stop the rounds; a child mid-write is stopped too (the next rebuild removes its
        temporary file and redoes that hour), a thread after the hour it is writing."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        child = self._child
        if child is not None and child.returncode is None:
            child.terminate()
            with contextlib.suppress(ProcessLookupError):
                await child.wait()

    async def _rounds(self) -> None:
        """A round every `interval` from the start of the last, or at once after one that took
        longer (a round that slept as long as it took after the round, 60 s after a minute's
        events took 54 s to write at 10 000 a second, fell behind: docs/benchmarks.md)."""
        await asyncio.sleep(self.interval)
        while True:
            began = time.monotonic()
            await self.refresh()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    async def refresh(self) -> int | None:
        """One round: segments written (0 without a round when no event came past the
        checkpoint within `IDLE_ROUND_SECONDS` of the last round), or None when another
        process holds the folder or the round failed (logged; the next round tries again)."""
        where = segments.folder(self.ctx)
        try:
            idle = time.monotonic() - self._last_round < IDLE_ROUND_SECONDS
            if idle and not await segments.pending(self.ctx):
                log.debug("insight segments: no event past the checkpoint; no round")
                return 0
            self._last_round = time.monotonic()
            with writer_lock(where, wait=False) as fd:
                if fd is None:
                    log.debug("insight segments: process %s is writing; skipped", holder(where))
                    return None
                began = time.time()
                if self.in_thread:
                    written, boundary = await asyncio.to_thread(
                        asyncio.run, rebuild_with_own_storage(self.ctx.config, self._stop)
                    )
                else:
                    written, boundary = await self._in_child(fd)
                ended = time.time()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "insight segments: refresh failed; retrying in %s s (answers stay exact, from "
                "the store past the last segment)",
                self.interval,
            )
            return None
        if written:
            log.info(
                "insight segments: wrote %d segment(s) in process %d holding the folder from "
                "%.3f to %.3f, checkpoint %s",
                written,
                os.getpid(),
                began,
                ended,
                boundary,
            )
        return written

    async def _in_child(self, fd: int) -> tuple[int, int | None]:
        """Run the round in `python -m eventstitch.columnar.refresher`, which inherits the
        locked descriptor and is handed this process's settings on stdin."""
        self._child = child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventstitch.columnar.refresher",
            str(fd),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(fd,),
        )
        # Left set when cancelled, so that close() can stop the child.
        out, err = await child.communicate(pickle.dumps(self.ctx.config))
        self._child = None
        if child.returncode != 0:
            tail = err.decode(errors="replace")[-STDERR_TAIL:]
            raise RuntimeError(f"the rebuild process exited with {child.returncode}: {tail}")
        answer = orjson.loads(out)
        return int(answer["written"]), answer["checkpoint"]


def _child_main(fd: int) -> int:
    """The child side of a round: the lock is already held on `fd` (inherited)."""
    os.nice(NICENESS)
    config = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - written by our parent
    written, boundary = asyncio.run(rebuild_with_own_storage(config, pause=PAUSE))
    sys.stdout.buffer.write(orjson.dumps({"written": written, "checkpoint": boundary}))
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1])))
