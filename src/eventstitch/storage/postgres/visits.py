"""A tracked visit on PostgreSQL, run by the writer inside its batch's transaction under the
identity lock (see `Visit`)."""

from __future__ import annotations

import dataclasses
import uuid

from eventstitch.identity.resolution import Resolver, system_event
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.postgres import identity
from eventstitch.storage.postgres.queries import pg_text
from eventstitch.storage.postgres.rows import Conn, insert_events
from eventstitch.storage.records import Visit, VisitResult
from eventstitch.storage.shared.claims import follow_plan, visit_claims
from eventstitch.storage.shared.refusals import check_tracker


async def write_visit(
    conn: Conn, visit: Visit, *, single_valued: frozenset[str], system_events: bool
) -> VisitResult:
    """Profile and session first, then the events, then their claims; all or nothing."""
    # The source's row stays locked until the commit.
    source = await conn.execute(
        "SELECT kind, enabled FROM sources WHERE id = %s FOR SHARE", (pg_text(visit.source_id),)
    )
    check_tracker(visit.source_id, await source.fetchone())
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
    items = visit_claims(events, visit.claims, profile_id)
    if items:
        await identity.store_event_identifiers(conn, [item for _, item in items])
        resolver = Resolver(single_valued=single_valued, new_profile_id=new_profile_id)
        plan = await identity.resolve(conn, [item for _, item in items], resolver, now_ms=now)
        follow_plan(plan, items, links)
        if profile_id is not None:
            profile_id = plan.final(profile_id)
        happenings += plan.system_events()
    if system_events:
        await insert_events(conn, happenings)
    return VisitResult(profile_id, session_id, tuple(links))
