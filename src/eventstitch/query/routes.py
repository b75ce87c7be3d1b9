"""HTTP for events and insights: parse the query string, call the query service, render."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from eventstitch.query import insights, service
from eventstitch.query.insight_params import parse_query, split_property_params
from eventstitch.query.schemas import (
    ConversionOut,
    CountsOut,
    EventOut,
    EventPage,
    InsightsOut,
    decode_cursor,
    event_json,
    parse_group_by,
    parse_property_path,
    parse_time,
    property_filters,
)
from eventstitch.storage.records import EventFilter

router = APIRouter(prefix="/api", tags=["events"])

TypeParam = Annotated[list[str] | None, Query(description="Event type; repeat for several.")]
SourceParam = Annotated[list[str] | None, Query(description="Source id; repeat for several.")]
SinceParam = Annotated[str | None, Query(description="ISO 8601; events received at or after.")]
UntilParam = Annotated[str | None, Query(description="ISO 8601; events received before.")]


def _json(content: object) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


def _filter(
    request: Request,
    type: list[str] | None,
    source_id: list[str] | None,
    profile_less: bool | None,
    profile_id: str | None,
    since: str | None,
    until: str | None,
    converted: bool | None = None,
    *,
    properties: list[tuple[str, str]] | None = None,
) -> EventFilter:
    """The filters every event route shares; `properties`: the property equalities, when the
    route reads other `properties.` parameters too (else all of the query's)."""
    if properties is None:
        properties = list(request.query_params.multi_items())
    return EventFilter(
        types=tuple(type or ()),
        source_ids=tuple(source_id or ()),
        profile_less=profile_less,
        profile_id=profile_id,
        since_ms=parse_time("since", since),
        until_ms=parse_time("until", until),
        properties=property_filters(properties),
        converted=converted,
    )


@router.get(
    "/events",
    response_model=None,
    responses={200: {"model": EventPage}},
    summary="List events, newest first",
    description="Also filters on `properties.<path>=<value>` (repeatable): strings match exactly, "
    "a value written as a JSON number matches numbers numerically, `true`/`false`/`null` match "
    "those JSON literals.",
)
async def list_events(
    request: Request,
    type: TypeParam = None,
    source_id: SourceParam = None,
    profile_less: bool | None = None,
    profile_id: str | None = None,
    since: SinceParam = None,
    until: UntilParam = None,
    limit: int | None = None,
    cursor: str | None = None,
    converted: Annotated[
        bool | None, Query(description="Profile-less events linked to a profile since (or not).")
    ] = None,
) -> Response:
    event_filter = _filter(
        request, type, source_id, profile_less, profile_id, since, until, converted
    )
    events, next_cursor = await service.list_page(
        ctx=request.app.state.ctx,
        event_filter=event_filter,
        limit=limit,
        before_id=decode_cursor(cursor),
    )
    return _json({"events": [event_json(e) for e in events], "next_cursor": next_cursor})


@router.get(
    "/events/{event_id}",
    response_model=None,
    responses={200: {"model": EventOut}},
    summary="One event",
)
async def get_event(request: Request, event_id: str) -> Response:
    event = await service.get(ctx=request.app.state.ctx, event_id=event_id)
    return _json(event_json(event))


@router.get(
    "/insights/counts",
    response_model=None,
    responses={200: {"model": CountsOut}},
    tags=["insights"],
    summary="Count events, grouped",
    description="`by` takes one or two of type, source, minute, hour, day, properties.<path> "
    "(comma-separated); `distinct=properties.<path>` adds the number of distinct values per "
    "group. Same filters as /api/events.",
)
async def counts(
    request: Request,
    by: str | None = None,
    distinct: str | None = None,
    type: TypeParam = None,
    source_id: SourceParam = None,
    profile_less: bool | None = None,
    profile_id: str | None = None,
    since: SinceParam = None,
    until: UntilParam = None,
    converted: bool | None = None,
) -> Response:
    event_filter = _filter(
        request, type, source_id, profile_less, profile_id, since, until, converted
    )
    answer = await service.count(
        ctx=request.app.state.ctx,
        event_filter=event_filter,
        group_by=parse_group_by(by),
        distinct=parse_property_path(distinct, field="distinct") if distinct else None,
    )
    return _json(answer)


@router.get(
    "/insights/conversion",
    response_model=None,
    responses={200: {"model": ConversionOut}},
    tags=["insights"],
    summary="How many profile-less events were linked to profiles, and by which identifier kind",
)
async def conversion(
    request: Request,
    by: Annotated[str, Query(pattern="^(source|type)$")] = "source",
    type: TypeParam = None,
    source_id: SourceParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
) -> Response:
    event_filter = _filter(request, type, source_id, True, None, since, until)
    answer = await service.conversion(ctx=request.app.state.ctx, event_filter=event_filter, by=by)
    return _json(answer)


@router.get(
    "/insights",
    response_model=None,
    responses={200: {"model": InsightsOut}},
    tags=["insights"],
    summary="Any aggregate of events, grouped by up to three dimensions",
    description="`metric`: count, count_distinct:<properties.path|profile_id|source_id>, or "
    "sum, avg, min, max, p50, p90, p95, p99 followed by `:properties.<path>`. `by`: up to three "
    "of type, source, profile_less, converted, minute, hour, day, week, month, "
    "properties.<path> (comma-separated, one time unit at most). Same filters as /api/events, "
    "plus `properties.<path>[gt]=N`, `[lt]=N`, `[in]=a,b`, `[exists]=true|false`. `tz`: an "
    "IANA zone for the time buckets. `top=N` keeps the N largest values of the first "
    "dimension that is not time and folds the rest into `other`. See docs/api.md.",
)
async def insights_query(
    request: Request,
    metric: str | None = None,
    by: str | None = None,
    tz: str | None = None,
    top: str | None = None,
    type: TypeParam = None,
    source_id: SourceParam = None,
    profile_less: bool | None = None,
    profile_id: str | None = None,
    since: SinceParam = None,
    until: UntilParam = None,
    converted: bool | None = None,
) -> Response:
    ctx = request.app.state.ctx
    equalities, comparisons = split_property_params(list(request.query_params.multi_items()))
    event_filter = _filter(
        request,
        type,
        source_id,
        profile_less,
        profile_id,
        since,
        until,
        converted,
        properties=equalities,
    )
    query = parse_query(
        metric=metric,
        by=by,
        tz=tz,
        top=top,
        comparisons=comparisons,
        max_groups=ctx.config.max_insight_groups,
    )
    return _json(await insights.get(ctx=ctx, event_filter=event_filter, query=query))
