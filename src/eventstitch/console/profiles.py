"""What the console's profile and source-rule pages show, from the identity and sources services."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from eventstitch.console.service import LIST_ROWS, FormError, validation_message
from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError
from eventstitch.identity import service as identity_service
from eventstitch.identity.schemas import profile_json
from eventstitch.paths import label
from eventstitch.query.schemas import event_json
from eventstitch.sources import service as sources_service
from eventstitch.sources.schemas import SourceOut, SourcePatch


async def search(*, ctx: AppContext, identifier: str) -> list[dict[str, Any]]:
    """Profiles holding `kind:value`; FormError carries the API's message for a bad one."""
    try:
        parsed = identity_service.parse_identifier(ctx, identifier)
        found = await identity_service.find(ctx=ctx, identifier=parsed)
    except EventstitchError as exc:
        raise FormError(exc.message) from None
    return [profile_json(profile) for profile in found]


def _origins(
    sources: list[Any], seen: set[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Which source rules can set each identifier kind and each trait, among the sources the
    profile's events came from: the store keeps no per-value history, the rules say where."""
    kinds: dict[str, list[str]] = {}
    traits: dict[str, list[str]] = {}
    for source in sources:
        if source.id not in seen:
            continue
        for rule in source.identification:
            kinds.setdefault(rule.kind, []).append(f"{source.id}: {label(rule.path)}")
        for name, path in source.traits.items():
            traits.setdefault(name, []).append(f"{source.id}: {label(path)}")
    return kinds, traits


LATER_MS = 1000
"""A link made more than this after the event was received was made by a later event or a
backfill, not at ingest."""


def _linked_later(received_ms: int, converted_ms: int | None) -> bool:
    return converted_ms is not None and converted_ms - received_ms > LATER_MS


async def get_profile(*, ctx: AppContext, profile_id: str) -> dict[str, Any]:
    """A live profile with merges, its newest events marked when converted, and where its
    identifiers and traits came from."""
    live = await identity_service.get_live(ctx=ctx, profile_id=profile_id)
    merges = await identity_service.list_merges(ctx=ctx, profile_id=live.id)
    events = await identity_service.recent_events(ctx=ctx, profile_id=live.id, limit=LIST_ROWS)
    view = profile_json(live, merges)
    view["asked_for"] = profile_id
    view["timeline"] = [
        {**event_json(event), "linked_later": _linked_later(event.received_ms, event.converted_ms)}
        for event in events
    ]
    kinds, traits = _origins(
        await sources_service.list_all(ctx=ctx), {event.source_id for event in events}
    )
    converted_by = {event.converted_by for event in events if event.converted_by}
    for identifier in view["identifiers"]:
        text = f"{identifier['kind']}:{identifier['value']}"
        identifier["origins"] = kinds.get(identifier["kind"], [])
        identifier["converted"] = text in converted_by
    view["trait_rows"] = [
        {"name": name, "value": orjson.dumps(value).decode(), "origins": traits.get(name, [])}
        for name, value in sorted(live.traits.items())
    ]
    return view


async def erase(*, ctx: AppContext, profile_id: str) -> tuple[str, int, int]:
    """Erase a profile as `DELETE /api/profiles/{id}` does."""
    return await identity_service.erase(ctx=ctx, profile_id=profile_id)


async def get_rules(*, ctx: AppContext, source_id: str) -> dict[str, str]:
    """A source's identification rules and traits as the JSON the API takes, for editing."""
    source = SourceOut.of(await sources_service.get(ctx=ctx, source_id=source_id))
    option = orjson.OPT_INDENT_2
    return {
        "identification": orjson.dumps(
            [rule.model_dump() for rule in source.identification], option=option
        ).decode(),
        "traits": orjson.dumps(source.traits, option=option).decode(),
    }


async def update_rules(*, ctx: AppContext, source_id: str, form: dict[str, str]) -> None:
    """Replace a source's rules and traits from the form's JSON, checked as `PATCH` checks it;
    FormError carries the API's message, and nothing changes."""
    fields: dict[str, Any] = {}
    for name in ("identification", "traits"):
        text = form.get(name, "").strip()
        if not text:
            continue
        try:
            fields[name] = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FormError(f"body.{name}: not valid JSON ({exc})") from None
    try:
        patch = SourcePatch.model_validate(fields)
        await sources_service.update(ctx=ctx, source_id=source_id, patch=patch)
    except ValidationError as exc:
        raise FormError(validation_message(exc)) from None
    except EventstitchError as exc:
        raise FormError(exc.message) from None
