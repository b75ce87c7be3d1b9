"""Running a service call from the command line: settings, storage open for the call, output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from eventstitch.config import ConfigError, load_config
from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError
from eventstitch.storage import open_storage

T = TypeVar("T")

console = Console()


def run(call: Callable[[AppContext], Awaitable[T]], *, start: bool = True, **overrides: Any) -> T:
    """Open storage, run one service call, close storage; refusals exit with their message.
    `overrides` replace settings (None means keep the environment's). `start=False` leaves
    storage unstarted (start would migrate first), for `db migrate` to report what it applied."""

    async def main() -> T:
        ctx = AppContext.build(config, open_storage(config))
        if not start:
            return await call(ctx)
        await ctx.storage.start()
        try:
            return await call(ctx)
        finally:
            await ctx.storage.close()

    try:
        config = load_config(**overrides)
        return asyncio.run(main())
    except (EventstitchError, ConfigError) as exc:
        message = exc.message if isinstance(exc, EventstitchError) else str(exc)
        click.echo(f"error: {message}", err=True)
        sys.exit(1)


def emit_json(value: Any) -> None:
    """Machine-readable output for scripts."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def emit_table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """A readable table for people."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def progress_bar() -> Progress:
    """A progress bar on stderr, so that stdout stays clean for what a command prints."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
