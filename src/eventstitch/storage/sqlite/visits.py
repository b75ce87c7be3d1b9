"""A tracked visit on SQLite, written in one transaction by the writer (see `Visit`)."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid

from eventstitch.identity.resolution import ClaimItem, Resolver, system_event
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.errors import SourceRefused
from eventstitch.storage.records import Visit, VisitResult
from eventstitch.storage.sqlite import identity
from eventstitch.storage.sqlite.rows import insert_events

TRACKER_KINDS = ("tracker",)


def write_visit(
    conn: sqlite3.Connection, visit: Visit, *, single_valued: frozenset[str], system_events: bool
) -> VisitResult:
    """Profile and session first, then the events, then their claims; all or nothing."""
    _check_source(conn, visit.source_id)
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
    items = [
        (i, ClaimItem(e.id, e.received_ms, dataclasses.replace(claim, profile_id=profile_id)))
        for i, (e, claim) in enumerate(zip(events, visit.claims, strict=True))
        if claim is not None
    ]
    if items:
        identity.store_event_identifiers(conn, [item for _, item in items])
        resolver = Resolver(single_valued=single_valued, new_profile_id=new_profile_id)
        plan = identity.resolve(conn, [item for _, item in items], resolver, now_ms=now)
        for index, item in items:
            link = plan.links.get(item.event_id)
            if link is not None:
                links[index] = plan.final(link.profile_id)
        if profile_id is not None:
            profile_id = plan.final(profile_id)
        happenings += plan.system_events()
    if system_events:
        insert_events(conn, happenings)
    return VisitResult(profile_id, session_id, tuple(links))


def _check_source(conn: sqlite3.Connection, source_id: str) -> None:
    row = conn.execute("SELECT kind, enabled FROM sources WHERE id = ?", (source_id,)).fetchone()
    if row is None:
        raise SourceRefused(source_id, "unknown_source")
    if not row[1]:
        raise SourceRefused(source_id, "disabled_source")
    if row[0] not in TRACKER_KINDS:
        raise SourceRefused(source_id, "wrong_source_kind")


def reclaim_stored(
    conn: sqlite3.Connection,
    items: list[ClaimItem],
    *,
    single_valued: frozenset[str],
    system_events: bool,
) -> int:
    """Resolve claims of stored events (a backfill); returns how many are linked now."""
    if not items:
        return 0
    ids = [item.event_id for item in items]
    marks = ",".join("?" * len(ids))
    owners = dict(
        conn.execute(f"SELECT id, profile_id FROM events WHERE id IN ({marks})", ids).fetchall()
    )
    anchored = [
        dataclasses.replace(
            item, claim=dataclasses.replace(item.claim, profile_id=owners.get(item.event_id))
        )
        for item in items
        if item.event_id in owners
    ]
    identity.store_event_identifiers(conn, anchored)
    resolver = Resolver(single_valued=single_valued, new_profile_id=new_profile_id)
    # A second backfill meets the same conflicts again; their refusals are already logged.
    resolver.refused_before.update(
        (event_id, kind, frozenset(pair))
        for event_id, kind, *pair in conn.execute(
            "SELECT event_id, refused_kind, survivor, merged FROM profile_merges"
            f" WHERE refused_kind IS NOT NULL AND event_id IN ({marks})",
            ids,
        )
    )
    plan = identity.resolve(conn, anchored, resolver, now_ms=now_ms())
    if system_events:
        insert_events(conn, plan.system_events())
    return sum(1 for item in anchored if owners[item.event_id] or item.event_id in plan.links)
