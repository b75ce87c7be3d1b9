"""Terminal charts of an insights answer (plotext): a line per series over time, or bars for
the groups of a breakdown (top-N included)."""

from __future__ import annotations

from typing import Any

import plotext

CHART_WIDTH = 100
CHART_HEIGHT = 18
MAX_BARS = 40
"""More bars than this are unreadable in a terminal: the chart shows the first ones."""


def insight_chart(answer: dict[str, Any]) -> str | None:
    """The chart of an answer, as text; None when it has no dimension or no numbers."""
    by: list[str] = answer["by"]
    rows = [row for row in answer["rows"] if row["value"] is not None]
    if not by or not rows:
        return None
    plotext.clear_figure()
    plotext.theme("clear")
    plotext.plotsize(CHART_WIDTH, CHART_HEIGHT)
    plotext.title(f"{answer['metric']} by {', '.join(by)}")
    time_unit = next((d for d in by if d in ("minute", "hour", "day", "week", "month")), None)
    if time_unit is None:
        shown = rows[:MAX_BARS]
        labels = [" / ".join(str(row[d]) for d in by) for row in shown]
        plotext.bar(labels, [row["value"] for row in shown], orientation="h")
    else:
        _lines(answer["rows"], by, time_unit)
    text: str = plotext.uncolorize(plotext.build())
    return text


def _lines(rows: list[dict[str, Any]], by: list[str], time_unit: str) -> None:
    """One line per combination of the other dimensions, empty intervals drawn as 0."""
    times = sorted({row[time_unit] for row in rows})
    at = {label: n for n, label in enumerate(times)}
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        name = " / ".join(str(row[d]) for d in by if d != time_unit) or str(row.get("metric", ""))
        series.setdefault(name, {})[at[row[time_unit]]] = row["value"] or 0
    for name, points in list(series.items())[:MAX_BARS]:
        xs = sorted(points)
        plotext.plot(xs, [points[x] for x in xs], label=name or None)
    ticks = sorted({0, len(times) // 2, len(times) - 1})
    plotext.xticks(ticks, [times[t][:16] for t in ticks])
