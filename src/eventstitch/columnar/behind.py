"""Work an answer leaves for after it: reading segments into a per-process cache, so that the
question asked first is answered by one statement at once (a distinct count over 10 million
events: about 0.1 s, where reading each segment's distinct values to keep them took 1.1 s,
docs/benchmarks.md) and the questions asked again find the segments kept.

One thread a process runs the jobs one after another; one job a key (the same question asked
again while its segments are being read adds nothing), and at most `MAX_WAITING` jobs wait:
past that a job is not taken (the next ask of its question offers it again). A job's statement
runs on the process's DuckDB like an answer's, sharing its threads and its memory cap
(EVENTSTITCH_COLUMNAR_MEMORY_MB). A job that fails (a segment merged into a larger one and
deleted meanwhile, DuckDB's memory cap) keeps nothing and is logged. Jobs are taken only while
a server is up in the process (`open`, `close`: the app's lifespan): a one-shot command would
wait for work whose cache dies with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

log = logging.getLogger(__name__)

MAX_WAITING = 8
"""Jobs taken and not finished, the one running included."""


class Behind:
    """A queue of jobs for one thread, one job a key, at most `limit` at a time."""

    def __init__(self, limit: int = MAX_WAITING) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._pending: dict[Hashable, Future[None]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._servers = 0

    def open(self) -> None:
        """A server in this process starts: jobs are taken while one is up."""
        with self._lock:
            self._servers += 1

    def close(self) -> None:
        """A server stops; with none left, the jobs waiting are dropped (one running ends)."""
        with self._lock:
            self._servers = max(0, self._servers - 1)
            if self._servers == 0:
                for key, future in list(self._pending.items()):
                    if future.cancel():
                        del self._pending[key]

    def offer(self, key: Hashable, job: Callable[[], None]) -> bool:
        """Take `job` to run later, unless one of `key` is waiting or running, or `limit` are,
        or no server is up."""
        with self._lock:
            if not self._servers or key in self._pending or len(self._pending) >= self._limit:
                return False
            if self._pool is None:  # made on first use: an app that never asks starts none
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="eventstitch-behind")
            future = self._pool.submit(self._run, key, job)
            self._pending[key] = future
            return True

    def _run(self, key: Hashable, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.warning("work behind an answer failed; nothing was kept", exc_info=True)
        finally:
            with self._lock:
                del self._pending[key]

    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait(self, timeout: float = 60.0) -> bool:
        """Until every job taken so far has ended (for tests and benches); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            try:
                future.result(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
            except CancelledError:
                continue
        return True


BEHIND = Behind()
