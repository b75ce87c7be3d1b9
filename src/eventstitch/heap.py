"""The cyclic collector in a long-running server process: start-up objects frozen out of its
sight, and its pauses measured.

After start-up a server process holds some 85 000 objects (the imported modules, the app, its
settings and caches) that live as long as the process. CPython's collector walks every one of
them on each full collection; under load those came about once a second and took up to 73 ms
each, with every request on the loop waiting, which was most of one worker's p99 at 64
connections (docs/benchmarks.md, "Collector pauses"). `gc.freeze()` exists for this: once
start-up is over the survivors move to a generation the collector never walks, and what
requests allocate afterwards is collected as before.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from eventstitch.metrics import REGISTRY, cumulative_buckets

PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, float("inf"))
GENERATIONS = 3


def freeze_startup_objects() -> int:
    """Collect what start-up left behind, then freeze the rest: the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class CollectorPauses(Collector):
    """`eventstitch_gc_pause_seconds{generation}`: how long each collection held the process,
    timed by a `gc.callbacks` hook (two clock reads a collection); and
    `eventstitch_gc_frozen_objects`, what `freeze_startup_objects` took out of their sight."""

    def __init__(self) -> None:
        self._began = 0.0
        self._counts = [[0] * len(PAUSE_BUCKETS) for _ in range(GENERATIONS)]
        self._seconds = [0.0] * GENERATIONS
        self._installed = False

    def install(self) -> None:
        """Start timing collections in this process (once, however often it is called)."""
        if not self._installed:
            gc.callbacks.append(self._on_collection)
            self._installed = True

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector, which one thread at a time runs: no lock needed.
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = time.perf_counter() - self._began
        generation = info["generation"]
        self._counts[generation][bisect_left(PAUSE_BUCKETS, pause)] += 1
        self._seconds[generation] += pause

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "eventstitch_gc_pause_seconds",
            "Time each cyclic garbage collection held this process, by generation (2: full).",
            labels=["generation"],
        )
        for generation in range(GENERATIONS):
            buckets = cumulative_buckets(PAUSE_BUCKETS, list(self._counts[generation]))
            pauses.add_metric([str(generation)], buckets, self._seconds[generation])
        yield pauses
        yield GaugeMetricFamily(
            "eventstitch_gc_frozen_objects",
            "Start-up objects frozen out of the collector's sight (gc.freeze).",
            value=gc.get_freeze_count(),
        )


PAUSES = CollectorPauses()
REGISTRY.register(PAUSES)
