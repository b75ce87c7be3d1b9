"""`eventstitch events`: reading events back (and the filters `insights` shares)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import click

from eventstitch.cli.runtime import emit_json, emit_table, json_option, run
from eventstitch.context import AppContext
from eventstitch.errors import BadRequest
from eventstitch.ids import ms_to_iso
from eventstitch.query import service
from eventstitch.query.schemas import (
    event_json,
    parse_time,
    property_filters,
)
from eventstitch.storage.records import EventFilter, EventRecord

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(func: F) -> F:
    """The filters shared by events and insights, as on the HTTP API."""
    options = [
        click.option("--type", "types", multiple=True, help="Event type; repeatable."),
        click.option("--source", "source_ids", multiple=True, help="Source id; repeatable."),
        click.option("--profile-less/--with-profile", "profile_less", default=None),
        click.option("--since", default=None, help="ISO 8601 time or date."),
        click.option("--until", default=None, help="ISO 8601 time or date."),
        click.option(
            "--where",
            "wheres",
            multiple=True,
            metavar="PATH=VALUE",
            help="Property equality, e.g. --where customer.email=a@a.com; repeatable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_filter(
    types: tuple[str, ...],
    source_ids: tuple[str, ...],
    profile_less: bool | None,
    since: str | None,
    until: str | None,
    wheres: tuple[str, ...],
) -> EventFilter:
    pairs = []
    for where in wheres:
        path, sep, value = where.partition("=")
        if not sep:
            raise click.BadParameter(f"{where!r} is not PATH=VALUE", param_hint="--where")
        pairs.append(("properties." + path.removeprefix("properties."), value))
    try:
        return EventFilter(
            types=types,
            source_ids=source_ids,
            profile_less=profile_less,
            since_ms=parse_time("since", since),
            until_ms=parse_time("until", until),
            properties=property_filters(pairs),
        )
    except BadRequest as exc:
        raise click.BadParameter(exc.message) from None


def _summary(event: EventRecord) -> list[Any]:
    props = ", ".join(f"{k}={v}" for k, v in list(event.properties.items())[:4])
    return [ms_to_iso(event.received_ms), event.type, event.source_id, event.id, props[:80]]


_COLUMNS = ["received", "type", "source", "id", "properties"]


@click.group()
def events() -> None:
    """Stored events."""


@events.command("list")
@filter_options
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
def list_(limit: int, as_json: bool, **filters: Any) -> None:
    """List events, newest first."""
    event_filter = build_filter(**filters)

    async def call(ctx: AppContext) -> list[EventRecord]:
        page, _ = await service.list_page(
            ctx=ctx, event_filter=event_filter, limit=limit, before_id=None
        )
        return page

    found = run(call)
    if as_json:
        emit_json({"events": [event_json(e) for e in found]})
    else:
        emit_table(_COLUMNS, [_summary(e) for e in found])


@events.command()
@click.argument("event_id")
def show(event_id: str) -> None:
    """Show one event whole, as JSON."""

    async def call(ctx: AppContext) -> EventRecord:
        return await service.get(ctx=ctx, event_id=event_id)

    emit_json(event_json(run(call)))


@events.command()
@filter_options
@click.option(
    "--interval", type=float, default=0.5, show_default=True, help="Seconds between polls."
)
@click.option(
    "--backlog", type=int, default=10, show_default=True, help="Recent events shown first."
)
@click.option("--max-events", type=int, default=None, help="Stop after this many (default: never).")
@json_option
def tail(
    interval: float, backlog: int, max_events: int | None, as_json: bool, **filters: Any
) -> None:
    """Follow new events live, oldest first, until interrupted."""
    event_filter = build_filter(**filters)

    async def call(ctx: AppContext) -> None:
        shown = 0
        async for event in service.follow(
            ctx=ctx, event_filter=event_filter, interval=interval, backlog=backlog
        ):
            if as_json:
                click.echo(service.event_line(event))
            else:
                click.echo("  ".join(str(v) for v in _summary(event)))
            shown += 1
            if max_events is not None and shown >= max_events:
                return

    with contextlib.suppress(KeyboardInterrupt):
        run(call)
