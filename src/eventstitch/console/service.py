"""What the console pages show, built from the same services the JSON API calls."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError
from eventstitch.ingest.parsing import COLLECT_PREFIX
from eventstitch.query import service as query_service
from eventstitch.query.schemas import PROPERTY_PREFIX, event_json, property_filters
from eventstitch.rejections import service as rejections_service
from eventstitch.rejections.schemas import rejection_json
from eventstitch.sources import service as sources_service
from eventstitch.sources.schemas import SourceCreate, SourcePatch
from eventstitch.storage.records import EventFilter, PropertyPath, RejectionFilter, SourceRecord

TAIL_ROWS = 50
"""Most events the live view draws per refresh; more arriving in between are counted, not drawn."""
LIST_ROWS = 50


class FormError(Exception):
    """A console form refused, with the message the JSON API would give for the same input."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Tail:
    """The newest events for the live view, and whether more arrived than it draws."""

    events: list[dict[str, Any]]
    newest_id: str | None
    overflowed: bool
    """More than TAIL_ROWS events arrived since the last refresh; the older of them are skipped."""


def _source_view(source: SourceRecord, base_url: str) -> dict[str, Any]:
    """A source as the sources page lists it: where to send to, and a curl that works as is."""
    view: dict[str, Any] = {
        "id": source.id,
        "name": source.name,
        "kind": source.kind,
        "enabled": source.enabled,
        "url": None,
        "curl": None,
    }
    if source.kind == "system":  # Eventstitch's own events: nothing can send to it
        return view
    if source.kind == "tracker":
        url = example = f"{base_url}/track"
        body = {"source": {"id": source.id}, "events": [{"type": "signup"}]}
    else:
        url = f"{base_url}{COLLECT_PREFIX}{{event_type}}/{source.id}"
        example = f"{base_url}{COLLECT_PREFIX}signup/{source.id}"
        body = {"email": "ada@example.com"}
    view["url"] = url
    view["curl"] = (
        f"curl -X POST {shlex.quote(example)} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(orjson.dumps(body).decode())}"
    )
    return view


async def list_sources(*, ctx: AppContext, base_url: str) -> list[dict[str, Any]]:
    """Every source with its ingest URL and a ready curl example."""
    found = await sources_service.list_all(ctx=ctx)
    return [_source_view(source, base_url) for source in found]


async def get_source(*, ctx: AppContext, source_id: str, base_url: str) -> dict[str, Any]:
    """One source as the sources page shows it (NotFound as the API says it)."""
    return _source_view(await sources_service.get(ctx=ctx, source_id=source_id), base_url)


def validation_message(exc: ValidationError) -> str:
    """The message the API's validation handler gives for the same body."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in ("body", *first["loc"]))
    return f"{field}: {first['msg']}"


async def create_source(*, ctx: AppContext, form: dict[str, str]) -> SourceRecord:
    """Create a source from the console form; FormError carries the API's message."""
    fields: dict[str, Any] = {key: value for key, value in form.items() if value.strip()}
    fields.pop("csrf", None)
    try:
        source_in = SourceCreate.model_validate(fields)
        return await sources_service.create(ctx=ctx, source_in=source_in)
    except ValidationError as exc:
        raise FormError(validation_message(exc)) from None
    except EventstitchError as exc:
        raise FormError(exc.message) from None


async def update_enabled(*, ctx: AppContext, source_id: str, enabled: bool) -> SourceRecord:
    """Turn a source on or off."""
    patch = SourcePatch.model_validate({"enabled": enabled})
    return await sources_service.update(ctx=ctx, source_id=source_id, patch=patch)


async def delete_source(*, ctx: AppContext, source_id: str) -> None:
    """Remove a source; its events stay."""
    await sources_service.delete(ctx=ctx, source_id=source_id)


def live_filter(*, type: str, source: str, profile_less: str, property: str) -> EventFilter:
    """The live view's filters as the events API reads them; FormError with the API's message
    for a property filter it would refuse."""
    properties: tuple[tuple[PropertyPath, str], ...] = ()
    if property.strip():
        name, sep, value = property.strip().partition("=")
        if not sep or not name.startswith(PROPERTY_PREFIX):
            raise FormError(f"property: expected properties.<path>=value, got {property[:80]!r}")
        try:
            properties = property_filters([(name.strip(), value.strip())])
        except EventstitchError as exc:
            raise FormError(exc.message) from None
    return EventFilter(
        types=(type,) if type else (),
        source_ids=(source,) if source else (),
        profile_less={"true": True, "false": False}.get(profile_less),
        properties=properties,
    )


async def get_tail(*, ctx: AppContext, event_filter: EventFilter, after: str | None) -> Tail:
    """The newest events, at most TAIL_ROWS whatever the ingest rate, so a refresh stays cheap."""
    # One more than is drawn: if that one is newer than the last refresh, some were skipped.
    fetched, _ = await query_service.list_page(
        ctx=ctx, event_filter=event_filter, limit=TAIL_ROWS + 1, before_id=None
    )
    events = fetched[:TAIL_ROWS]
    overflowed = after is not None and len(fetched) > TAIL_ROWS and fetched[TAIL_ROWS].id > after
    return Tail(
        events=[event_json(event) for event in events],
        newest_id=events[0].id if events else after,
        overflowed=overflowed,
    )


def _pretty(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


async def get_event(*, ctx: AppContext, event_id: str) -> dict[str, Any]:
    """One event with its payload and context pretty-printed."""
    event = event_json(await query_service.get(ctx=ctx, event_id=event_id))
    event["properties_pretty"] = _pretty(event["properties"])
    event["context_pretty"] = _pretty(event["context"])
    return event


async def list_refusals(*, ctx: AppContext) -> list[dict[str, Any]]:
    """The newest refused requests."""
    page = await rejections_service.list_page(
        ctx=ctx, rejection_filter=RejectionFilter(), limit=LIST_ROWS, before_id=None
    )
    return [rejection_json(record) for record in page.rejections]


async def get_refusal(*, ctx: AppContext, rejection_id: str) -> dict[str, Any]:
    """One refused request with its headers and kept body."""
    refusal = rejection_json(await rejections_service.get(ctx=ctx, rejection_id=rejection_id))
    refusal["headers_pretty"] = _pretty(refusal["headers"])
    return refusal


async def replay_refusal(*, ctx: AppContext, rejection_id: str) -> str:
    """Replay a refused request; the answer, or the API's message when it is refused again."""
    try:
        answer = await rejections_service.replay(ctx=ctx, rejection_id=rejection_id)
    except EventstitchError as exc:
        raise FormError(exc.message) from None
    return _pretty(answer)
