"""A tracked visit and a backfill on PostgreSQL, each run by the writer inside its batch's
transaction under the identity lock (see `Visit` and `EventStore.reclaim`)."""

from __future__ import annotations

import dataclasses
import uuid

from eventstitch.identity.resolution import ClaimItem, Resolver, system_event
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.errors import SourceRefused
from eventstitch.storage.postgres import identity
from eventstitch.storage.postgres.queries import pg_text
from eventstitch.storage.postgres.rows import Conn, insert_events
from eventstitch.storage.records import Visit, VisitResult

TRACKER_KINDS = ("tracker",)


async def write_visit(
    conn: Conn, visit: Visit, *, single_valued: frozenset[str], system_events: bool
) -> VisitResult:
    """Profile and session first, then the events, then their claims; all or nothing."""
    await _check_source(conn, visit.source_id)
    now = now_ms()
    happenings = []
    profile_id = session_id = None
    if not visit.profile_less:
        if visit.session_hint:
            profile_id = await identity.session_profile(conn, visit.session_hint)
            if profile_id is not None:
                session_id = pg_text(visit.session_hint)
        if profile_id is None and visit.profile_hint:
            profile_id = await identity.live_profile(conn, visit.profile_hint)
        if profile_id is None:
            profile_id = new_profile_id()
            await conn.execute(
                "INSERT INTO profiles (id, created_ms, updated_ms) VALUES (%s, %s, %s)",
                (profile_id, now, now),
            )
            happenings.append(
                system_event("profile-created", {"profile_id": profile_id, "identifiers": []})
            )
        if session_id is None:
            session_id = pg_text(visit.session_hint) if visit.session_hint else str(uuid.uuid4())
            await conn.execute(
                "INSERT INTO sessions (id, profile_id, created_ms, updated_ms)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET updated_ms = excluded.updated_ms",
                (session_id, profile_id, now, now),
            )
        else:
            await conn.execute(
                "UPDATE sessions SET updated_ms = %s WHERE id = %s", (now, session_id)
            )
    events = [
        dataclasses.replace(e, profile_id=profile_id, session_id=session_id) for e in visit.events
    ]
    await insert_events(conn, events)
    links: list[str | None] = [profile_id] * len(events)
    items = [
        (i, ClaimItem(e.id, e.received_ms, dataclasses.replace(claim, profile_id=profile_id)))
        for i, (e, claim) in enumerate(zip(events, visit.claims, strict=True))
        if claim is not None
    ]
    if items:
        await identity.store_event_identifiers(conn, [item for _, item in items])
        resolver = Resolver(single_valued=single_valued, new_profile_id=new_profile_id)
        plan = await identity.resolve(conn, [item for _, item in items], resolver, now_ms=now)
        for index, item in items:
            link = plan.links.get(item.event_id)
            if link is not None:
                links[index] = plan.final(link.profile_id)
        if profile_id is not None:
            profile_id = plan.final(profile_id)
        happenings += plan.system_events()
    if system_events:
        await insert_events(conn, happenings)
    return VisitResult(profile_id, session_id, tuple(links))


async def _check_source(conn: Conn, source_id: str) -> None:
    """Refuse unless the source is an enabled tracker; its row stays locked until the commit."""
    cursor = await conn.execute(
        "SELECT kind, enabled FROM sources WHERE id = %s FOR SHARE", (pg_text(source_id),)
    )
    row = await cursor.fetchone()
    if row is None:
        raise SourceRefused(source_id, "unknown_source")
    if not row[1]:
        raise SourceRefused(source_id, "disabled_source")
    if row[0] not in TRACKER_KINDS:
        raise SourceRefused(source_id, "wrong_source_kind")


async def reclaim_stored(
    conn: Conn, items: list[ClaimItem], *, single_valued: frozenset[str], system_events: bool
) -> int:
    """Resolve claims of stored events (a backfill); returns how many are linked now."""
    if not items:
        return 0
    cursor = await conn.execute(
        "SELECT id, profile_id FROM events WHERE id = ANY(%s::text[])",
        ([pg_text(item.event_id) for item in items],),
    )
    owners: dict[str, str | None] = {row[0]: row[1] for row in await cursor.fetchall()}
    anchored = [
        dataclasses.replace(
            item, claim=dataclasses.replace(item.claim, profile_id=owners.get(item.event_id))
        )
        for item in items
        if item.event_id in owners
    ]
    await identity.store_event_identifiers(conn, anchored)
    resolver = Resolver(single_valued=single_valued, new_profile_id=new_profile_id)
    # A second backfill meets the same conflicts again; their refusals are already logged.
    cursor = await conn.execute(
        "SELECT event_id, refused_kind, survivor, merged FROM profile_merges"
        " WHERE refused_kind IS NOT NULL AND event_id = ANY(%s::text[])",
        (list(owners),),
    )
    resolver.refused_before.update(
        (event_id, kind, frozenset(pair)) for event_id, kind, *pair in await cursor.fetchall()
    )
    plan = await identity.resolve(conn, anchored, resolver, now_ms=now_ms())
    if system_events:
        await insert_events(conn, plan.system_events())
    return sum(1 for item in anchored if owners[item.event_id] or item.event_id in plan.links)
