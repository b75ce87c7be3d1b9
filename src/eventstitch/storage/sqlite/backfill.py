"""A backfill page on SQLite: stored events' claims resolved, and the checkpoint set, in the
writer's transaction (see `EventStore.backfill`)."""

from __future__ import annotations

import sqlite3

from eventstitch.identity.resolution import ClaimItem, Resolver
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.records import Claim
from eventstitch.storage.shared.claims import anchored, linked_after
from eventstitch.storage.shared.sql import checkpoint_sql
from eventstitch.storage.sqlite import identity
from eventstitch.storage.sqlite.queries import SQLITE
from eventstitch.storage.sqlite.rows import insert_events

_CLEAR, _SET = checkpoint_sql(SQLITE)


def backfill_stored(
    conn: sqlite3.Connection,
    items: list[tuple[str, int, Claim]],
    *,
    checkpoint: tuple[str, str | None],
    single_valued: frozenset[str],
    system_events: bool,
) -> int:
    """Resolve the claims of stored events and set the checkpoint (None clears it); returns
    how many of the events are linked now."""
    linked = _resolve_stored(
        conn,
        [ClaimItem(event_id, ms, claim) for event_id, ms, claim in items],
        single_valued=single_valued,
        system_events=system_events,
    )
    name, value = checkpoint
    if value is None:
        conn.execute(_CLEAR, (name,))
    else:
        conn.execute(_SET, (name, value, now_ms()))
    return linked


def _resolve_stored(
    conn: sqlite3.Connection,
    items: list[ClaimItem],
    *,
    single_valued: frozenset[str],
    system_events: bool,
) -> int:
    if not items:
        return 0
    ids = [item.event_id for item in items]
    marks = ",".join("?" * len(ids))
    owners = dict(
        conn.execute(f"SELECT id, profile_id FROM events WHERE id IN ({marks})", ids).fetchall()
    )
    claims = anchored(items, owners)
    identity.store_event_identifiers(conn, claims)
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
    plan = identity.resolve(conn, claims, resolver, now_ms=now_ms())
    if system_events:
        insert_events(conn, plan.system_events())
    return linked_after(claims, owners, plan)
