"""`eventstitch db`: schema migrations."""

from __future__ import annotations

import click

from eventstitch.cli.runtime import run
from eventstitch.context import AppContext


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command()
def migrate() -> None:
    """Apply pending schema migrations (serve also does this on start)."""

    async def call(ctx: AppContext) -> list[int]:
        return await ctx.storage.migrate()

    applied = run(call, start=False)
    click.echo(f"applied migrations: {applied}" if applied else "schema is up to date")
