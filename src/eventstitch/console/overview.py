"""The overview page: the store's counts, events per minute as a chart, and this process's own
ingest metrics (the same numbers `/metrics` serves)."""

from __future__ import annotations

from typing import Any

from eventstitch.console.explorer import Chart, chart
from eventstitch.context import AppContext
from eventstitch.ids import now_ms
from eventstitch.metrics import COMMIT_BATCH_SIZE, EVENTS_REJECTED, INGEST, QUEUE_DEPTH
from eventstitch.query import service as query_service
from eventstitch.query.schemas import parse_group_by
from eventstitch.storage.records import EventFilter

TOP_GROUPS = 5
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
CHART_MINUTES = 60
REFRESH_SECONDS = 5
"""How often the live part of the overview is drawn again."""


def _metric_sum(metric: Any, suffix: str) -> float:
    return sum(
        float(sample.value)
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    )


def _top(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: -int(row["count"]))[:TOP_GROUPS]


def _share(part: int, whole: int) -> float:
    """Part of the whole in percent, for the width of a bar."""
    return round(100 * part / whole, 1) if whole else 0.0


def process_metrics() -> dict[str, Any]:
    """Accepted, refused, queue depth and commit batches of this process since it started."""
    accepted = INGEST.accepted_total()
    refused = int(_metric_sum(EVENTS_REJECTED, "_total"))
    commits = int(_metric_sum(COMMIT_BATCH_SIZE, "_count"))
    committed = _metric_sum(COMMIT_BATCH_SIZE, "_sum")
    return {
        "accepted": accepted,
        "refused": refused,
        "accepted_share": _share(accepted, accepted + refused),
        "queue_depth": int(_metric_sum(QUEUE_DEPTH, "")),
        "commits": commits,
        "batch_mean": round(committed / commits, 1) if commits else 0.0,
    }


async def per_minute(*, ctx: AppContext) -> Chart:
    """Events stored per minute over the last hour, drawn as the insights explorer draws a
    series. Counted by the store (the counts service), not scanned here, so a busy hour costs
    one grouped query."""
    now = now_ms()
    since = now - now % MINUTE_MS - (CHART_MINUTES - 1) * MINUTE_MS
    counts = await query_service.count(
        ctx=ctx,
        event_filter=EventFilter(since_ms=since),
        group_by=parse_group_by("minute"),
        distinct=None,
    )
    rows = [{"minute": row["minute"], "value": row["count"]} for row in counts["rows"]]
    return chart({"by": ["minute"], "metric": "count", "rows": rows})


async def get_live(*, ctx: AppContext) -> dict[str, Any]:
    """What the overview redraws every few seconds: the per-minute chart and the metrics."""
    minutes = await per_minute(ctx=ctx)
    points = minutes.series[0]["points"] if minutes.series else []
    return {
        **process_metrics(),
        "chart": minutes,
        "last_minute": points[-1]["value"] if points else 0,
        "refresh_seconds": REFRESH_SECONDS,
    }


async def get(*, ctx: AppContext) -> dict[str, Any]:
    """Counts of the last day and of all time from the store, with the live part."""
    now = now_ms()
    # From the top of the hour 24 hours ago: whole hours are read from the hourly rollup, where
    # a bound inside an hour makes the store scan a day of events.
    day = EventFilter(since_ms=now - now % HOUR_MS - 24 * HOUR_MS)
    by_type = await query_service.count(
        ctx=ctx, event_filter=day, group_by=parse_group_by("type"), distinct=None
    )
    by_source = await query_service.count(
        ctx=ctx, event_filter=day, group_by=parse_group_by("source"), distinct=None
    )
    # Over all time: the profile-less totals come from the rollup and the converted ones from
    # the index of converted events; a time bound would make the second a scan.
    everything = EventFilter(profile_less=True)
    conversion = await query_service.conversion(ctx=ctx, event_filter=everything, by="source")
    profile_less = sum(int(row["profile_less"]) for row in conversion["rows"])
    converted = sum(int(row["converted"]) for row in conversion["rows"])
    return {
        "stored_last_day": by_type["total"],
        "top_types": _top(by_type["rows"]),
        "top_sources": _top(by_source["rows"]),
        "profile_less": profile_less,
        "converted": converted,
        "converted_share": _share(converted, profile_less),
        "live": await get_live(ctx=ctx),
    }
