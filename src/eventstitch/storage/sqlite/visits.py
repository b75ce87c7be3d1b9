"""A tracked visit on SQLite, written in one transaction by the writer (see `Visit`)."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid

from eventstitch.identity.resolution import Resolver, system_event
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.records import Visit, VisitResult
from eventstitch.storage.shared.claims import follow_plan, visit_claims
from eventstitch.storage.shared.refusals import check_tracker
from eventstitch.storage.sqlite import identity
from eventstitch.storage.sqlite.rows import insert_events


def write_visit(
    conn: sqlite3.Connection, visit: Visit, *, single_valued: frozenset[str], system_events: bool
) -> VisitResult:
    """Profile and session first, then the events, then their claims; all or nothing."""
    check_tracker(
        visit.source_id,
        conn.execute(
            "SELECT kind, enabled FROM sources WHERE id = ?", (visit.source_id,)
        ).fetchone(),
    )
    now = now_ms()
    happenings = []
    profile_id = session_id = None
    if not visit.profile_less:
        if visit.session_hint:
            profile_id = identity.session_profile(conn, visit.session_hint)
            if profile_id is not None:
                session_id = visit.session_hint
        if profile_id is None and visit.profile_hint:
            profile_id = identity.live_profile(conn, visit.profile_hint)
        if profile_id is None:
            profile_id = new_profile_id()
            conn.execute(
                "INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, ?, ?)",
                (profile_id, now, now),
            )
            happenings.append(
                system_event("profile-created", {"profile_id": profile_id, "identifiers": []})
            )
        if session_id is None:
            session_id = visit.session_hint or str(uuid.uuid4())
            conn.execute(
                "INSERT INTO sessions (id, profile_id, created_ms, updated_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET updated_ms = excluded.updated_ms",
                (session_id, profile_id, now, now),
            )
        else:
            conn.execute("UPDATE sessions SET updated_ms = ? WHERE id = ?", (now, session_id))
    events = [
        dataclasses.replace(e, profile_id=profile_id, session_id=session_id) for e in visit.events
    ]
    insert_events(conn, events)
    links: list[str | None] = [profile_id] * len(events)
    items = visit_claims(events, visit.claims, profile_id)
    if items:
        identity.store_event_identifiers(conn, [item for _, item in items])
        resolver = Resolver(single_valued=single_valued, new_profile_id=new_profile_id)
        plan = identity.resolve(conn, [item for _, item in items], resolver, now_ms=now)
        follow_plan(plan, items, links)
        if profile_id is not None:
            profile_id = plan.final(profile_id)
        happenings += plan.system_events()
    if system_events:
        insert_events(conn, happenings)
    return VisitResult(profile_id, session_id, tuple(links))
