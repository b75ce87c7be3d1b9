"""Work an answer leaves for after it: reading segments into a per-process cache, so that the
question asked first is answered by one statement at once (a distinct count over 10 million
events: about 0.1 s, where reading each segment's distinct values to keep them took 1.1 s,
docs/benchmarks.md) and the questions asked again find the segments kept.

One thread a process runs the jobs one after another, so the work behind answers takes at
most one core; one job a key (the same question asked again while its segments are being read
adds nothing), and at most `MAX_WAITING` jobs wait: past that a job is not taken (the next
ask of its question offers it again). A job that fails (a segment merged into a larger one and
deleted meanwhile, DuckDB's memory cap) keeps nothing and is logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor

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

    def offer(self, key: Hashable, job: Callable[[], None]) -> bool:
        """Take `job` to run later, unless one of `key` is waiting or running, or `limit` are."""
        with self._lock:
            if key in self._pending or len(self._pending) >= self._limit:
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
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            try:
                future.result(timeout)
            except TimeoutError:
                return False
        return True


BEHIND = Behind()
