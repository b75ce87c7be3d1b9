"""HTTP for profiles."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from eventstitch.identity import service
from eventstitch.identity.schemas import ErasureOut, ProfileList, ProfileOut, profile_json
from eventstitch.query.schemas import event_json

router = APIRouter(prefix="/api/profiles", tags=["profiles"])


def _json(content: object) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@router.get(
    "",
    response_model=None,
    responses={200: {"model": ProfileList}},
    summary="Find profiles by identifier",
)
async def find_profiles(
    request: Request,
    identifier: Annotated[str, Query(description="kind:value, e.g. email:a@a.com")],
) -> Response:
    ctx = request.app.state.ctx
    found = await service.find(ctx=ctx, identifier=service.parse_identifier(ctx, identifier))
    return _json({"profiles": [profile_json(p) for p in found]})


@router.get(
    "/{profile_id}",
    response_model=None,
    responses={200: {"model": ProfileOut}},
    summary="One profile with identifiers, traits, merges and recent events",
    description="A profile merged into another answers with `merged_into` and the survivor "
    "under `profile`.",
)
async def get_profile(request: Request, profile_id: str) -> Response:
    ctx = request.app.state.ctx
    profile = await service.get(ctx=ctx, profile_id=profile_id)
    if profile.merged_into is not None:
        live = await service.get_live(ctx=ctx, profile_id=profile_id)
        body = profile_json(profile, await service.list_merges(ctx=ctx, profile_id=profile.id))
        body["profile"] = await _full(request, live.id)
        return _json(body)
    return _json(await _full(request, profile.id))


async def _full(request: Request, profile_id: str) -> dict[str, object]:
    ctx = request.app.state.ctx
    profile = await service.get(ctx=ctx, profile_id=profile_id)
    body = profile_json(profile, await service.list_merges(ctx=ctx, profile_id=profile_id))
    events = await service.recent_events(ctx=ctx, profile_id=profile_id)
    body["recent_events"] = [event_json(e) for e in events]
    return body


@router.delete(
    "/{profile_id}",
    response_model=ErasureOut,
    summary="Erase a profile and its events (right to be forgotten)",
)
async def erase_profile(request: Request, profile_id: str) -> ErasureOut:
    live_id, profiles, events = await service.erase(
        ctx=request.app.state.ctx, profile_id=profile_id
    )
    return ErasureOut(ok=True, profile_id=live_id, profiles_removed=profiles, events_removed=events)
