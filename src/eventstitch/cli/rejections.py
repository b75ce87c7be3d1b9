"""`eventstitch rejections`: refused ingest requests, the same as `/api/rejections`."""

from __future__ import annotations

from typing import Any

import click

from eventstitch.cli.runtime import emit_json, emit_table, json_option, run
from eventstitch.context import AppContext
from eventstitch.errors import BadRequest
from eventstitch.query.schemas import parse_time
from eventstitch.rejections import service
from eventstitch.rejections.schemas import RejectionPage, page_json, rejection_json
from eventstitch.storage.records import RejectionFilter, RejectionRecord


@click.group()
def rejections() -> None:
    """Refused ingest requests: inspect them, replay one once its source is fixed."""


@rejections.command("list")
@click.option("--reason", "reasons", multiple=True, help="Refusal reason; repeatable.")
@click.option("--source", "source_ids", multiple=True, help="Source id; repeatable.")
@click.option("--since", default=None, help="ISO 8601 time or date.")
@click.option("--until", default=None, help="ISO 8601 time or date.")
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
def list_(
    reasons: tuple[str, ...],
    source_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List refused requests, newest first."""
    try:
        rejection_filter = RejectionFilter(
            reasons=reasons,
            source_ids=source_ids,
            since_ms=parse_time("since", since),
            until_ms=parse_time("until", until),
        )
    except BadRequest as exc:
        raise click.BadParameter(exc.message) from None

    async def call(ctx: AppContext) -> RejectionPage:
        return await service.list_page(
            ctx=ctx, rejection_filter=rejection_filter, limit=limit, before_id=None
        )

    page = run(call)
    if as_json:
        emit_json(page_json(page))
        return
    emit_table(
        ["received", "reason", "status", "source", "method", "path", "id", "replayed"],
        [
            [
                out["received_at"],
                out["reason"],
                out["status"],
                out["source_id"],
                out["method"],
                out["path"],
                out["id"],
                "yes" if out["replayed_at"] else "",
            ]
            for out in (rejection_json(r) for r in page.rejections)
        ],
        title=f"{sum(page.dropped.values())} not kept",
    )


@rejections.command()
@click.argument("rejection_id")
@json_option
def show(rejection_id: str, as_json: bool) -> None:
    """Show one refused request, with the body kept."""

    async def call(ctx: AppContext) -> RejectionRecord:
        return await service.get(ctx=ctx, rejection_id=rejection_id)

    out = rejection_json(run(call))
    if as_json:
        emit_json(out)
    else:
        emit_table(["field", "value"], [[k, v] for k, v in out.items()])


@rejections.command()
@click.argument("rejection_id")
@json_option
def replay(rejection_id: str, as_json: bool) -> None:
    """Ingest a refused request again (no signature check), as the HTTP replay does."""

    async def call(ctx: AppContext) -> dict[str, Any]:
        return await service.replay(ctx=ctx, rejection_id=rejection_id)

    answer = run(call)
    if as_json:
        emit_json(answer)
        return
    ids = [answer["id"]] if "id" in answer else [e["id"] for e in answer["events"]]
    duplicate = " (a delivery stored before; nothing new)" if answer.get("duplicate") else ""
    click.echo(f"replayed: {', '.join(ids)}{duplicate}")
