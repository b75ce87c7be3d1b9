"""`eventstitch profiles` and `eventstitch identity`: the same as /api/profiles, and backfill."""

from __future__ import annotations

from typing import Any

import click

from eventstitch.cli.runtime import emit_json, emit_table, json_option, progress_bar, run
from eventstitch.context import AppContext
from eventstitch.identity import service
from eventstitch.identity.schemas import profile_json


def _show(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(body)
        return
    emit_table(
        ["field", "value"],
        [
            ["id", body["id"]],
            ["merged into", body["merged_into"]],
            ["created", body["created_at"]],
            ["identifiers", ", ".join(f"{i['kind']}:{i['value']}" for i in body["identifiers"])],
            ["traits", ", ".join(f"{k}={v}" for k, v in body["traits"].items())],
            ["merges", len(body["merges"])],
        ],
    )


@click.group()
def profiles() -> None:
    """Profiles and their identifiers."""


@profiles.command()
@click.argument("profile_id")
@json_option
def show(profile_id: str, as_json: bool) -> None:
    """Show a profile (a merged one shows where it went)."""

    async def call(ctx: AppContext) -> dict[str, Any]:
        profile = await service.get(ctx=ctx, profile_id=profile_id)
        return profile_json(profile, await service.list_merges(ctx=ctx, profile_id=profile.id))

    _show(run(call), as_json)


@profiles.command()
@click.argument("identifier", metavar="KIND:VALUE")
@json_option
def find(identifier: str, as_json: bool) -> None:
    """Find the profile holding an identifier, e.g. email:a@a.com."""

    async def call(ctx: AppContext) -> list[dict[str, Any]]:
        found = await service.find(ctx=ctx, identifier=service.parse_identifier(ctx, identifier))
        return [profile_json(p) for p in found]

    found = run(call)
    if as_json:
        emit_json({"profiles": found})
    elif not found:
        click.echo("no profile holds that identifier")
    else:
        _show(found[0], as_json=False)


@profiles.command()
@click.argument("profile_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def erase(profile_id: str, yes: bool, as_json: bool) -> None:
    """Erase a profile, the profiles merged into it, and all their events."""
    if not yes:
        click.confirm(f"Erase profile {profile_id} and all its events?", abort=True)

    async def call(ctx: AppContext) -> tuple[str, int, int]:
        return await service.erase(ctx=ctx, profile_id=profile_id)

    live_id, removed_profiles, removed_events = run(call)
    result = {
        "profile_id": live_id,
        "profiles_removed": removed_profiles,
        "events_removed": removed_events,
    }
    if as_json:
        emit_json(result)
    else:
        click.echo(f"erased {removed_profiles} profile(s) and {removed_events} event(s)")


@click.group()
def identity() -> None:
    """Identity resolution jobs."""


@identity.command()
@click.option("--source", "source_id", default=None, help="Only this source (default: all).")
@json_option
def backfill(source_id: str | None, as_json: bool) -> None:
    """Re-apply the current identification rules to stored events (resumable)."""

    async def call(ctx: AppContext) -> dict[str, int]:
        total = await service.count_events(ctx=ctx, source_id=source_id)
        with progress_bar() as bar:
            task = bar.add_task("backfilling", total=total)
            return await service.backfill(
                ctx=ctx, source_id=source_id, progress=lambda n: bar.advance(task, n)
            )

    report = run(call)
    if as_json:
        emit_json(report)
    else:
        click.echo(
            f"read {report['events']} events of {report['sources']} source(s); "
            f"{report['linked']} are linked to a profile"
        )
