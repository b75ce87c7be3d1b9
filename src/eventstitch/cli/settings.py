"""`eventstitch config`: the settings table, for people and for the docs."""

from __future__ import annotations

import click

from eventstitch.config import SETTINGS, ConfigError, load_config, masked_url, settings_markdown


@click.group()
def config() -> None:
    """Settings read from the environment."""


@config.command()
def docs() -> None:
    """Print docs/configuration.md (generated from the settings table)."""
    click.echo(settings_markdown(), nl=False)


@config.command()
def show() -> None:
    """Print the settings in force (the API token and any database password hidden)."""
    try:
        current = load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for setting in SETTINGS:
        value = getattr(current, setting.name)
        if setting.name == "api_token" and value:
            value = "(set)"
        elif setting.name == "database_url":
            value = masked_url(value)
        click.echo(f"{setting.env_name}={value}")
