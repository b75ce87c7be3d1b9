"""A backfill page on PostgreSQL: stored events' claims resolved, and the checkpoint set, in the
writer's transaction under the identity lock (see `EventStore.backfill`)."""

from __future__ import annotations

from eventstitch.identity.resolution import ClaimItem, Resolver
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.postgres import identity
from eventstitch.storage.postgres.queries import POSTGRES, pg_text
from eventstitch.storage.postgres.rows import Conn, insert_events
from eventstitch.storage.records import Claim
from eventstitch.storage.shared.claims import anchored, linked_after
from eventstitch.storage.shared.sql import checkpoint_sql

_CLEAR, _SET = checkpoint_sql(POSTGRES)


async def backfill_stored(
    conn: Conn,
    items: list[tuple[str, int, Claim]],
    *,
    checkpoint: tuple[str, str | None],
    single_valued: frozenset[str],
    system_events: bool,
) -> int:
    """Resolve the claims of stored events and set the checkpoint (None clears it); returns
    how many of the events are linked now."""
    linked = await _resolve_stored(
        conn,
        [ClaimItem(event_id, ms, claim) for event_id, ms, claim in items],
        single_valued=single_valued,
        system_events=system_events,
    )
    name, value = checkpoint
    if value is None:
        await conn.execute(_CLEAR, (pg_text(name),))
    else:
        await conn.execute(_SET, (pg_text(name), pg_text(value), now_ms()))
    return linked


async def _resolve_stored(
    conn: Conn, items: list[ClaimItem], *, single_valued: frozenset[str], system_events: bool
) -> int:
    if not items:
        return 0
    cursor = await conn.execute(
        "SELECT id, profile_id FROM events WHERE id = ANY(%s::text[])",
        ([pg_text(item.event_id) for item in items],),
    )
    owners: dict[str, str | None] = {row[0]: row[1] for row in await cursor.fetchall()}
    claims = anchored(items, owners)
    await identity.store_event_identifiers(conn, claims)
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
    plan = await identity.resolve(conn, claims, resolver, now_ms=now_ms())
    if system_events:
        await insert_events(conn, plan.system_events())
    return linked_after(claims, owners, plan)
