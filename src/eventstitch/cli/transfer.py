"""`eventstitch export` and `eventstitch import`: move a store between backends."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import BinaryIO

import click

from eventstitch.cli.events import build_filter
from eventstitch.cli.runtime import emit_json, progress_bar, run
from eventstitch.columnar import segments
from eventstitch.context import AppContext
from eventstitch.files import open_private
from eventstitch.storage.records import EventFilter
from eventstitch.transfer import service
from eventstitch.transfer.service import ImportReport

database_option = click.option(
    "--database-url", default=None, help="Overrides EVENTSTITCH_DATABASE_URL for this command."
)


@click.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default="-",
    help="File (created owner-only: it holds the signing secrets), or - for stdout.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["jsonl", "parquet"]),
    default="jsonl",
    show_default=True,
    help="jsonl: the whole store, to import elsewhere. parquet: events only, for analysis "
    "(DuckDB, pandas, Spark), narrowed by the filters below.",
)
@click.option("--type", "types", multiple=True, help="Event type; repeatable (parquet only).")
@click.option("--source", "source_ids", multiple=True, help="Source id; repeatable (parquet only).")
@click.option("--since", default=None, help="ISO 8601 time or date (parquet only).")
@click.option("--until", default=None, help="ISO 8601 time or date (parquet only).")
@database_option
def export(
    output: Path,
    file_format: str,
    types: tuple[str, ...],
    source_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    database_url: str | None,
) -> None:
    """Write sources and events as JSON Lines (with counts and a checksum at the end), or the
    events as Parquet."""
    if file_format == "parquet":
        if str(output) == "-":
            raise click.BadParameter("a Parquet export needs a file", param_hint="-o/--output")
        event_filter = build_filter(types, source_ids, None, since, until, ())
        _export_parquet(output, event_filter, database_url)
        return
    if types or source_ids or since or until:
        raise click.UsageError(
            "filters apply to --format parquet only: a JSON Lines export is a whole-store backup"
        )
    with (
        contextlib.nullcontext(sys.stdout.buffer) if str(output) == "-" else open_private(output)
    ) as stream:
        _export(stream, database_url)


def _export(output: BinaryIO, database_url: str | None) -> None:

    async def call(ctx: AppContext) -> None:
        total = await service.total_events(ctx=ctx)
        with progress_bar() as bar:
            task = bar.add_task("exporting events", total=total)
            async for line in service.export_lines(
                ctx=ctx, progress=lambda n: bar.advance(task, n)
            ):
                output.write(line)
        output.flush()
        click.echo(f"exported {total} events", err=True)

    run(call, database_url=database_url)


def _export_parquet(output: Path, event_filter: EventFilter, database_url: str | None) -> None:

    async def call(ctx: AppContext) -> int:
        with progress_bar() as bar:
            task = bar.add_task("exporting events", total=None)
            return await service.export_parquet(
                ctx=ctx,
                event_filter=event_filter,
                target=output,
                progress=lambda n: bar.advance(task, n),
            )

    written = run(call, database_url=database_url)
    click.echo(f"exported {written} events to {output}", err=True)


@click.command("import")
@click.argument("source_file", type=click.File("rb"))
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_(source_file: BinaryIO, database_url: str | None, as_json: bool) -> None:
    """Load an export (ids kept, existing ones skipped), then compare counts and checksum."""

    async def call(ctx: AppContext) -> ImportReport:
        with progress_bar() as bar:
            task = bar.add_task("importing events", total=None)
            report = await service.import_lines(
                ctx=ctx, lines=source_file, progress=lambda n: bar.advance(task, n)
            )
        if report.events_new:
            segments.invalidate(ctx)  # events may land in hours already sealed
        return report

    report = run(call, database_url=database_url)
    if as_json:
        emit_json({**report.__dict__, "verified": report.verified})
    else:
        click.echo(
            f"sources: {report.sources_new} new, {report.sources_existing} already there\n"
            f"profiles: {report.profiles_new} new, {report.profiles_existing} already there\n"
            f"events: {report.events_new} new, {report.events_existing} already there\n"
            f"store now holds {report.target_events} events, checksum {report.target_checksum}"
        )
    for problem in report.problems:
        click.echo(f"error: {problem}", err=True)
    if not report.verified:
        sys.exit(1)
    click.echo("verified: counts and checksum match the file", err=True)
