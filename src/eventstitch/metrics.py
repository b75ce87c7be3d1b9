"""Prometheus metrics of this process, served as text on `GET /metrics`.

Counters are per process; with `--workers N` each process answers for itself (documented).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_REJECTED = Counter(
    "eventstitch_events_rejected",
    "Ingest requests refused, by reason.",
    ["reason"],
    registry=REGISTRY,
)
# Refusals themselves are counted by EVENTS_REJECTED; these say what became of their records.
REJECTIONS_RECORDED = Counter(
    "eventstitch_rejections_recorded",
    "Refused ingest requests written to the rejections table.",
    registry=REGISTRY,
)
REJECTIONS_DROPPED = Counter(
    "eventstitch_rejections_dropped",
    "Refused requests not kept, or removed to keep the bounds, by cause: buffer_full, "
    "max_rows, max_age, error.",
    ["cause"],
    registry=REGISTRY,
)
REJECTIONS_BUFFERED = Gauge(
    "eventstitch_rejections_buffered",
    "Refused requests waiting in memory to be written.",
    registry=REGISTRY,
)
REJECTIONS_BUFFER_PEAK = Gauge(
    "eventstitch_rejections_buffer_peak",
    "The most refused requests that waited in memory at once since the process started.",
    registry=REGISTRY,
)
IDENTITY_SKIPPED = Counter(
    "eventstitch_identity_rules_skipped",
    "Identification rules not applied to an event, by reason (several_values: the rule's "
    "path held a list of different values, which would merge different people).",
    ["reason"],
    registry=REGISTRY,
)
HANDSHAKES_ANSWERED = Counter(
    "eventstitch_handshakes_answered",
    "Senders' URL checks answered (and stored as nothing), by sender: slack, zoom, meta, "
    "mailchimp.",
    ["sender"],
    registry=REGISTRY,
)
UNKNOWN_ROUTES = Counter(
    "eventstitch_unknown_routes",
    "Requests answered 404 because no route answers their path, by route family: collect "
    "(a /collect path of the wrong shape), track (/track/...), sdk (paths analytics SDKs post "
    "to: /v1/, /batch, /capture, /e/, /i/), other.",
    ["family"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "eventstitch_write_queue_depth",
    "Events waiting for the writer.",
    registry=REGISTRY,
)
COMMIT_BATCH_SIZE = Histogram(
    "eventstitch_commit_batch_size",
    "Events committed per write transaction (group commit).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "eventstitch_commit_seconds",
    "Time to write and commit one batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RouteStats:
    """One ingest route's accepted events and latency: updated on every accepted request, so
    kept in plain numbers under one lock (prometheus_client's counter and histogram take a lock
    each and cost about 2 us a request together), and rendered on scrape."""

    __slots__ = ("_lock", "accepted", "bounds", "buckets", "seconds")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted = 0
        self.bounds = (*INGEST_BUCKETS, float("inf"))
        self.buckets = [0] * len(self.bounds)
        self.seconds = 0.0

    def record(self, accepted: int, seconds: float) -> None:
        """An answered request that stored `accepted` events and took `seconds`."""
        with self._lock:
            self.accepted += accepted
            self.buckets[bisect_left(self.bounds, seconds)] += 1
            self.seconds += seconds

    def snapshot(self) -> tuple[int, list[int], float]:
        """Accepted events, requests per latency bucket, and their total seconds."""
        with self._lock:
            return self.accepted, list(self.buckets), self.seconds


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Observations per bucket as a Prometheus histogram's cumulative `le` buckets."""
    cumulative, buckets = 0, []
    for bound, count in zip(bounds, counts, strict=True):
        cumulative += count
        le = floatToGoString(bound)  # type: ignore[no-untyped-call]  # untyped upstream
        buckets.append((le, float(cumulative)))
    return buckets


class IngestCollector(Collector):
    """`eventstitch_events_accepted_total{route}` and `eventstitch_ingest_seconds{route}`."""

    def __init__(self) -> None:
        self._routes: dict[str, RouteStats] = {}

    def route(self, name: str) -> RouteStats:
        return self._routes.setdefault(name, RouteStats())

    def accepted_total(self) -> int:
        """Events accepted by every route since the process started (the console's overview)."""
        return sum(stats.snapshot()[0] for stats in list(self._routes.values()))

    def collect(self) -> Iterator[Metric]:
        accepted = CounterMetricFamily(
            "eventstitch_events_accepted",
            "Events durably committed, by ingest route.",
            labels=["route"],
        )
        latency = HistogramMetricFamily(
            "eventstitch_ingest_seconds",
            "Ingest request latency from first byte read to answer, accepted events only.",
            labels=["route"],
        )
        for name, stats in list(self._routes.items()):
            total, counts, seconds = stats.snapshot()
            accepted.add_metric([name], float(total))
            latency.add_metric([name], cumulative_buckets(stats.bounds, counts), seconds)
        yield accepted
        yield latency


INGEST = IngestCollector()
REGISTRY.register(INGEST)
