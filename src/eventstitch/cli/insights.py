"""`eventstitch insights`: the aggregates of GET /api/insights, as a chart and a table or as
JSON; the same parsing and the same service as HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from eventstitch.cli.charts import insight_chart
from eventstitch.cli.events import build_filter, filter_options
from eventstitch.cli.runtime import emit_json, emit_table, json_option, progress_bar, run
from eventstitch.columnar import segments
from eventstitch.columnar.lock import holder, writer_lock
from eventstitch.config import load_config
from eventstitch.context import AppContext
from eventstitch.errors import BadRequest
from eventstitch.query import insights as service
from eventstitch.query.insight_params import InsightQuery, parse_query, split_property_params
from eventstitch.query.schemas import property_filters
from eventstitch.storage.records import EventFilter


@click.group(invoke_without_command=True)
@filter_options
@click.option(
    "--metric",
    default="count",
    show_default=True,
    help="count, count_distinct:<properties.path|profile_id|source_id>, or "
    "sum|avg|min|max|p50|p90|p95|p99:properties.<path>.",
)
@click.option(
    "--by",
    default="type",
    show_default=True,
    help="Up to three of type, source, profile_less, converted, minute, hour, day, week, "
    "month, properties.<path>.",
)
@click.option("--distinct", default=None, help="Shorthand for --metric count_distinct:<path>.")
@click.option("--tz", default=None, help="IANA time zone of the time buckets (default UTC).")
@click.option("--top", default=None, help="Keep the N largest groups, fold the rest into other.")
@click.option("--converted/--not-converted", "converted", default=None)
@click.option("--chart/--no-chart", default=True, show_default=True, help="Draw a chart.")
@json_option
def insights(
    metric: str,
    by: str,
    distinct: str | None,
    tz: str | None,
    top: str | None,
    converted: bool | None,
    chart: bool,
    as_json: bool,
    wheres: tuple[str, ...],
    **filters: Any,
) -> None:
    """Aggregate events by up to three dimensions (the same as GET /api/insights).

    --where takes PATH=VALUE and the comparisons PATH[gt]=N, PATH[lt]=N, PATH[in]=a,b and
    PATH[exists]=true|false. `insights rebuild` writes the columnar segments."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    event_filter, query = _parse(metric, by, distinct, tz, top, converted, wheres, filters)

    async def call(ctx: AppContext) -> dict[str, Any]:
        return await service.get(ctx=ctx, event_filter=event_filter, query=query)

    answer = run(call)
    if as_json:
        emit_json(answer)
        return
    drawn = insight_chart(answer) if chart else None
    if drawn:
        click.echo(drawn)
    columns = [*answer["by"], "count", "value"] + (["skipped"] if "skipped" in answer else [])
    emit_table(
        columns,
        [[row.get(c) for c in columns] for row in answer["rows"]],
        title=f"{answer['metric']}: {answer['total']} events ({answer['engine']}, "
        f"{answer['took_ms']} ms)",
    )


def _parse(
    metric: str,
    by: str,
    distinct: str | None,
    tz: str | None,
    top: str | None,
    converted: bool | None,
    wheres: tuple[str, ...],
    filters: dict[str, Any],
) -> tuple[EventFilter, InsightQuery]:
    pairs = []
    for where in wheres:
        path, sep, value = where.partition("=")
        if not sep:
            raise click.BadParameter(f"{where!r} is not PATH=VALUE", param_hint="--where")
        pairs.append(("properties." + path.removeprefix("properties."), value))
    try:
        equalities, comparisons = split_property_params(pairs)
        event_filter = dataclasses.replace(
            build_filter(wheres=(), **filters),
            properties=property_filters(equalities),
            converted=converted,
        )
        if distinct and metric == "count":
            metric = f"count_distinct:{distinct}"
        query = parse_query(
            metric=metric,
            by=by,
            tz=tz,
            top=top,
            comparisons=comparisons,
            max_groups=10**9,  # the service applies the configured limit
        )
    except BadRequest as exc:
        raise click.BadParameter(exc.message) from None
    return event_filter, query


@insights.command("rebuild")
@click.option("--from-scratch", is_flag=True, help="Delete the segments and write them all again.")
def rebuild(from_scratch: bool) -> None:
    """Write the Parquet segments of the sealed hours past the checkpoint (resumes after a
    crash). `serve` does this by itself every EVENTSTITCH_COLUMNAR_REFRESH_SECONDS; this
    command takes the same writer lock, so it waits for a round in progress to finish."""

    async def call(ctx: AppContext) -> int:
        where = segments.folder(ctx)
        with writer_lock(where, wait=False) as free:
            if free is None:
                click.echo(
                    f"waiting for process {holder(where)} (a server's segment refresher or "
                    "another rebuild) to finish writing segments...",
                    err=True,
                )
        # Waiting holds no event loop work back: nothing else runs in this command.
        with writer_lock(where, wait=True), progress_bar() as bar:
            task = bar.add_task("writing segments", total=None)
            return await segments.rebuild(
                ctx=ctx,
                from_scratch=from_scratch,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )

    written = run(call)
    click.echo(f"wrote {written} segments", err=True)
    if load_config().columnar_refresh_seconds == 0:
        click.echo(
            "note: EVENTSTITCH_COLUMNAR_REFRESH_SECONDS=0 turns the columnar read side off; "
            "/api/insights reads these segments once it is on",
            err=True,
        )
