"""HTTP for refused ingest requests: list them, show one, replay one."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from eventstitch.query.schemas import decode_cursor, parse_time
from eventstitch.rejections import service
from eventstitch.rejections.schemas import RejectionOut, RejectionPageOut, page_json, rejection_json
from eventstitch.storage.records import RejectionFilter

router = APIRouter(prefix="/api", tags=["rejections"])


def _json(content: object) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@router.get(
    "/rejections",
    response_model=None,
    responses={200: {"model": RejectionPageOut}},
    summary="List refused ingest requests, newest first (bodies left out)",
)
async def list_rejections(
    request: Request,
    reason: Annotated[list[str] | None, Query(description="Refusal reason; repeatable.")] = None,
    source_id: Annotated[list[str] | None, Query(description="Source id; repeatable.")] = None,
    since: Annotated[str | None, Query(description="ISO 8601; refused at or after.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601; refused before.")] = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Response:
    rejection_filter = RejectionFilter(
        reasons=tuple(reason or ()),
        source_ids=tuple(source_id or ()),
        since_ms=parse_time("since", since),
        until_ms=parse_time("until", until),
    )
    page = await service.list_page(
        ctx=request.app.state.ctx,
        rejection_filter=rejection_filter,
        limit=limit,
        before_id=decode_cursor(cursor),
    )
    return _json(page_json(page))


@router.get(
    "/rejections/{rejection_id}",
    response_model=None,
    responses={200: {"model": RejectionOut}},
    summary="One refused ingest request, with the body kept",
)
async def get_rejection(request: Request, rejection_id: str) -> Response:
    record = await service.get(ctx=request.app.state.ctx, rejection_id=rejection_id)
    return _json(rejection_json(record))


@router.post(
    "/rejections/{rejection_id}/replay",
    response_model=None,
    summary="Ingest a refused request again (after fixing its source)",
    description="Answers what ingest would answer, and marks the rejection replayed with the "
    "events stored. Skips signature checks and rate limits (an operator's action under the "
    "API token); the source check, parsing and delivery-id deduplication apply. 409 when it "
    "was replayed already or its body was truncated.",
)
async def replay_rejection(request: Request, rejection_id: str) -> Response:
    answer = await service.replay(ctx=request.app.state.ctx, rejection_id=rejection_id)
    return _json(answer)
