"""The insights explorer: a GET form turned into an insights query (so the URL is the query),
its answer as a table and as an SVG chart drawn here, with no script."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventstitch.console.service import FormError
from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError
from eventstitch.ids import ms_to_iso, now_ms
from eventstitch.query import insights
from eventstitch.query.insight_params import (
    NUMERIC_METRICS,
    PLAIN_DIMENSIONS,
    TIME_UNITS,
    parse_query,
    split_property_params,
)
from eventstitch.query.schemas import parse_time, property_filters
from eventstitch.storage.records import EventFilter

HOUR_MS = 3_600_000
RANGES = {"1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000}
"""The time ranges the form offers, before now; `all` and explicit since/until besides."""
METRICS = ("count", "count_distinct", *NUMERIC_METRICS)
DIMENSIONS = (*TIME_UNITS, *PLAIN_DIMENSIONS)
WIDTH, HEIGHT, PAD = 720, 260, 40
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")


@dataclass
class Chart:
    """What the template draws: bars (categories) or points on lines (time), in SVG units."""

    kind: str
    bars: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    top: float = 0
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def _one(params: dict[str, list[str]], name: str, default: str = "") -> str:
    return (params.get(name) or [default])[0].strip()


def form_values(params: list[tuple[str, str]]) -> dict[str, Any]:
    """The form as submitted, to fill it in again."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    by = [b for b in grouped.get("by", []) if b.strip()]
    return {
        "metric": _one(grouped, "metric", "count"),
        "of": _one(grouped, "of"),
        "by": by,
        "by_text": ",".join(by),
        "type": _one(grouped, "type"),
        "source_id": _one(grouped, "source_id"),
        "profile_less": _one(grouped, "profile_less"),
        "range": _one(grouped, "range", "24h"),
        "since": _one(grouped, "since"),
        "until": _one(grouped, "until"),
        "tz": _one(grouped, "tz"),
        "top": _one(grouped, "top"),
        "where": _one(grouped, "where"),
    }


def _where_pairs(where: str) -> list[tuple[str, str]]:
    """`properties.plan=pro; properties.total[gt]=10` as query-string pairs."""
    pairs = []
    for part in where.split(";"):
        name, sep, value = part.strip().partition("=")
        if part.strip():
            if not sep or not name.startswith("properties."):
                raise FormError(
                    f"where: expected properties.<path>=value, got {part.strip()[:80]!r}"
                )
            pairs.append((name.strip(), value.strip()))
    return pairs


def _time_filter(values: dict[str, Any]) -> tuple[int | None, int | None]:
    since = parse_time("since", values["since"] or None)
    until = parse_time("until", values["until"] or None)
    if since is None and values["range"] in RANGES:
        since = (until or now_ms()) - RANGES[values["range"]]
        # From the top of that hour: whole hours are counted from the hourly rollup, where a
        # bound inside an hour makes the engine scan every event of the range.
        since -= since % HOUR_MS
    return since, until


async def run(*, ctx: AppContext, values: dict[str, Any]) -> dict[str, Any]:
    """The insights answer for the form, as `GET /api/insights` gives it; FormError with the
    API's message for a parameter it refuses."""
    metric = values["metric"] if not values["of"] else f"{values['metric']}:{values['of']}"
    try:
        equalities, comparisons = split_property_params(_where_pairs(values["where"]))
        since, until = _time_filter(values)
        event_filter = EventFilter(
            types=(values["type"],) if values["type"] else (),
            source_ids=(values["source_id"],) if values["source_id"] else (),
            profile_less={"true": True, "false": False}.get(values["profile_less"]),
            since_ms=since,
            until_ms=until,
            properties=property_filters(equalities),
        )
        query = parse_query(
            metric=metric,
            by=values["by_text"] or None,
            tz=values["tz"] or None,
            top=values["top"] or None,
            comparisons=comparisons,
            max_groups=ctx.config.max_insight_groups,
        )
        answer = await insights.get(ctx=ctx, event_filter=event_filter, query=query)
    except EventstitchError as exc:
        raise FormError(exc.message) from None
    answer["since"] = ms_to_iso(since) if since is not None else None
    return answer


def chart(answer: dict[str, Any]) -> Chart:
    """Bars per row, or, when the first dimension is time, one line of points per combination
    of the other dimensions."""
    by: list[str] = answer["by"]
    rows: list[dict[str, Any]] = answer["rows"]
    numbers = [float(row["value"]) for row in rows if row["value"] is not None]
    top = max([0.0, *numbers]) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def y_of(value: Any) -> float:
        return round(HEIGHT - PAD - (float(value or 0) / top) * inner_h, 1)

    if by and by[0] in TIME_UNITS:
        lines: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            name = " · ".join(str(row[d]) for d in by[1:]) or answer["metric"]
            lines.setdefault(name, []).append(row)
        series = []
        for index, (name, line) in enumerate(lines.items()):
            step = inner_w / max(len(line) - 1, 1)
            points = [
                {
                    "x": round(PAD + i * step, 1),
                    "y": y_of(row["value"]),
                    "label": row[by[0]],
                    "value": row["value"],
                }
                for i, row in enumerate(line)
            ]
            series.append(
                {
                    "name": name,
                    "color": PALETTE[index % len(PALETTE)],
                    "points": points,
                    "path": " ".join(f"{p['x']},{p['y']}" for p in points),
                }
            )
        return Chart(kind="line", series=series, top=top)
    slot = inner_w / max(len(rows), 1)
    bars = [
        {
            "x": round(PAD + i * slot + slot * 0.1, 1),
            "y": y_of(row["value"]),
            "w": round(slot * 0.8, 1),
            "h": round(HEIGHT - PAD - y_of(row["value"]), 1),
            "label": " · ".join(str(row[d]) for d in by) or answer["metric"],
            "value": row["value"],
        }
        for i, row in enumerate(rows)
    ]
    return Chart(kind="bar", bars=bars, top=top)
