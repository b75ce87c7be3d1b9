"""The `eventstitch` command: one group per domain, each calling the same services as HTTP."""

from __future__ import annotations

import click

from eventstitch import __version__
from eventstitch.cli.db import db
from eventstitch.cli.events import events
from eventstitch.cli.insights import insights
from eventstitch.cli.profiles import identity, profiles
from eventstitch.cli.rejections import rejections
from eventstitch.cli.serve import serve
from eventstitch.cli.settings import config
from eventstitch.cli.sources import sources
from eventstitch.cli.transfer import export, import_


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eventstitch")
def cli() -> None:
    """Eventstitch: a self-hosted event collector."""


for command in (
    serve,
    sources,
    events,
    insights,
    rejections,
    profiles,
    identity,
    db,
    config,
    export,
    import_,
):
    cli.add_command(command)


def main() -> None:
    cli()
