"""Prometheus metrics of this process, served as text on `GET /metrics`.

Counters are per process; with `--workers N` each process answers for itself (documented).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_ACCEPTED = Counter(
    "eventstitch_events_accepted",
    "Events durably committed, by ingest route.",
    ["route"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "eventstitch_events_rejected",
    "Ingest requests refused, by reason.",
    ["reason"],
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
INGEST_SECONDS = Histogram(
    "eventstitch_ingest_seconds",
    "Ingest request latency from first byte read to answer, accepted events only.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
