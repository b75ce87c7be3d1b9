"""Identity inside the PostgreSQL write transaction: read owners, let the resolver decide, write.

Every transaction that runs this holds the identity advisory lock (`IDENTITY_LOCK` in
writer.py) from its first statement, and reads in READ COMMITTED, so each statement sees
every earlier identity decision of every process: two first contacts with one email, even on two
machines, cannot both create a profile. The decisions themselves are `identity.resolution`'s,
shared with SQLite; this module only reads owners and writes the plan, with array parameters
(unnest) instead of SQLite's chunked VALUES lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson

from eventstitch.identity.resolution import ClaimItem, Plan, ProfileState, Resolver
from eventstitch.storage.postgres.queries import pg_text, without_nul
from eventstitch.storage.postgres.rows import Conn, columns
from eventstitch.storage.records import Claim, Identifier
from eventstitch.storage.shared.claims import owners_from_rows, stored_claims


def pg_claim(claim: Claim | None) -> Claim | None:
    """A claim whose identifiers and traits PostgreSQL can hold (U+0000 becomes U+FFFD), so the
    resolver and the database see the same values."""
    if claim is None:
        return None
    identifiers = tuple((pg_text(k), pg_text(v)) for k, v in claim.identifiers)
    traits = without_nul(claim.traits)
    once = without_nul(claim.traits_once)
    if identifiers == claim.identifiers and traits == claim.traits and once == claim.traits_once:
        return claim
    return dataclasses.replace(claim, identifiers=identifiers, traits=traits, traits_once=once)


async def store_event_identifiers(conn: Conn, items: Sequence[ClaimItem]) -> None:
    """Remember what each new event carried, for conversion when a profile learns it later."""
    rows = [
        (kind, value, item.event_id, position)
        for item in items
        for position, (kind, value) in enumerate(item.claim.identifiers)
    ]
    if rows:
        await conn.execute(
            "INSERT INTO event_identifiers (kind, value, event_id, position)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int4[])"
            " ON CONFLICT DO NOTHING",
            columns(rows, 4),
        )
    # Traits too: an event linked later copies them then. Only events without a profile can
    # be linked later; a backfill re-reading one replaces them with what the current rules say.
    traits = [
        (item.event_id, _json(dict(item.claim.traits)))
        for item in items
        if item.claim.traits and item.claim.profile_id is None
    ]
    if traits:
        await conn.execute(
            "INSERT INTO event_traits (event_id, traits)"
            " SELECT id, traits::jsonb FROM unnest(%s::text[], %s::text[]) AS u(id, traits)"
            " ON CONFLICT (event_id) DO UPDATE SET traits = excluded.traits",
            columns(traits, 2),
        )


async def resolve(
    conn: Conn, items: Sequence[ClaimItem], resolver: Resolver, *, now_ms: int
) -> Plan:
    """Decide for the batch's claims, then for every stored profile-less event that carries an
    identifier a profile gained meanwhile (and so on, until nothing changes); write the plan."""
    anchors = {item.claim.profile_id for item in items if item.claim.profile_id}
    if anchors:
        resolver.load((), await load_profiles(conn, anchors - set(resolver.profiles)))
    pending = list(items)
    while pending:
        asked = resolver.unknown(i for item in pending for i in item.claim.identifiers)
        if asked:
            resolver.load(asked, await _owners(conn, asked))
        for item in pending:
            resolver.resolve(item)
        pending = await _stored_claims(conn, resolver.take_fresh(), resolver.plan.links.keys())
    await _apply(conn, resolver, now_ms)
    return resolver.plan


def _pairs(identifiers: Sequence[Identifier] | set[Identifier]) -> list[list[str]]:
    return columns(list(identifiers), 2)


async def _owners(conn: Conn, identifiers: set[Identifier]) -> list[ProfileState]:
    """The profiles owning any of `identifiers`, each with all its identifiers, in one query."""
    cursor = await conn.execute(
        "SELECT p.id, p.created_ms, p.traits::text, p.trait_events::text, held.kind, held.value"
        " FROM identifiers AS asked JOIN profiles AS p ON p.id = asked.profile_id"
        " JOIN identifiers AS held ON held.profile_id = p.id"
        " WHERE (asked.kind, asked.value) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        _pairs(identifiers),
    )
    return owners_from_rows(await cursor.fetchall())


async def load_profiles(conn: Conn, profile_ids: set[str]) -> list[ProfileState]:
    """Profiles with all their identifiers and traits."""
    ids = [pg_text(i) for i in profile_ids]
    if not ids:
        return []
    cursor = await conn.execute(
        "SELECT id, created_ms, traits::text, trait_events::text FROM profiles"
        " WHERE id = ANY(%s::text[])",
        (ids,),
    )
    profiles = {
        row[0]: ProfileState(row[0], row[1], {}, orjson.loads(row[2]), orjson.loads(row[3]))
        for row in await cursor.fetchall()
    }
    cursor = await conn.execute(
        "SELECT kind, value, profile_id FROM identifiers WHERE profile_id = ANY(%s::text[])",
        (ids,),
    )
    for kind, value, profile_id in await cursor.fetchall():
        profiles[profile_id].identifiers.setdefault(kind, set()).add(value)
    return list(profiles.values())


async def _stored_claims(conn: Conn, fresh: list[Identifier], decided: Any) -> list[ClaimItem]:
    """Profile-less events (stored, not yet linked) that carry any of `fresh`."""
    if not fresh:
        return []
    skip = set(decided)
    cursor = await conn.execute(
        "SELECT e.id, e.received_ms FROM event_identifiers AS ei"
        " JOIN events AS e ON e.id = ei.event_id"
        " WHERE (ei.kind, ei.value) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
        " AND e.profile_id IS NULL",
        _pairs(fresh),
    )
    found = {
        event_id: received_ms
        for event_id, received_ms in await cursor.fetchall()
        if event_id not in skip
    }
    if not found:
        return []
    carried: dict[str, list[tuple[int, Identifier]]] = {event_id: [] for event_id in found}
    cursor = await conn.execute(
        "SELECT event_id, kind, value, position FROM event_identifiers"
        " WHERE event_id = ANY(%s::text[])",
        (list(found),),
    )
    for event_id, kind, value, position in await cursor.fetchall():
        carried[event_id].append((position, (kind, value)))
    cursor = await conn.execute(
        "SELECT event_id, traits::text FROM event_traits WHERE event_id = ANY(%s::text[])",
        (list(found),),
    )
    traits = {event_id: orjson.loads(text) for event_id, text in await cursor.fetchall()}
    return stored_claims(found, carried, traits)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _apply(conn: Conn, resolver: Resolver, now_ms: int) -> None:
    plan = resolver.plan
    if plan.created:
        await conn.execute(
            "INSERT INTO profiles (id, created_ms, updated_ms, traits, trait_events)"
            " SELECT id, created_ms, %s, traits::jsonb, trait_events::jsonb"
            " FROM unnest(%s::text[], %s::int8[], %s::text[], %s::text[])"
            " AS u(id, created_ms, traits, trait_events)",
            [
                now_ms,
                *columns(
                    [
                        (p.id, p.created_ms, _json(p.traits), _json(p.trait_events))
                        for p in plan.created.values()
                    ],
                    4,
                ),
            ],
        )
    for merge in plan.merges:
        survivor, merged = merge.survivor, merge.merged
        for statement in (
            "UPDATE identifiers SET profile_id = %s WHERE profile_id = %s",
            "UPDATE events SET profile_id = %s WHERE profile_id = %s",
            "UPDATE sessions SET profile_id = %s WHERE profile_id = %s",
        ):
            await conn.execute(statement, (survivor, merged))
        await conn.execute(
            "UPDATE profiles SET merged_into = %s, updated_ms = %s"
            " WHERE id = %s OR merged_into = %s",
            (survivor, now_ms, merged, merged),
        )
        await conn.execute(
            "INSERT INTO profile_merges (survivor, merged, event_id, at_ms)"
            " VALUES (%s, %s, %s, %s)",
            (survivor, merged, merge.event_id, merge.at_ms),
        )
    if plan.refused:
        await conn.execute(
            "INSERT INTO profile_merges (survivor, merged, event_id, at_ms, refused_kind)"
            " SELECT survivor, merged, event_id, at_ms, kind FROM unnest(%s::text[],"
            " %s::text[], %s::text[], %s::int8[], %s::text[]) WITH ORDINALITY"
            " AS u(survivor, merged, event_id, at_ms, kind, n) ORDER BY n",
            columns(
                [(r.profiles[0], r.profiles[1], r.event_id, r.at_ms, r.kind) for r in plan.refused],
                5,
            ),
        )
    if plan.attached:
        await conn.execute(
            "INSERT INTO identifiers (kind, value, profile_id, created_ms)"
            " SELECT kind, value, profile_id, %s"
            " FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(kind, value, profile_id)",
            [
                now_ms,
                *columns(
                    [(kind, value, plan.final(owner)) for (kind, value), owner in plan.attached],
                    3,
                ),
            ],
        )
    touched = [
        (p, _json(resolver.profiles[p].traits), _json(resolver.profiles[p].trait_events))
        for p in sorted(plan.touched)
        if p in resolver.profiles and p not in plan.created
    ]
    if touched:
        await conn.execute(
            "UPDATE profiles SET traits = u.traits::jsonb, trait_events = u.trait_events::jsonb,"
            " updated_ms = %s FROM unnest(%s::text[], %s::text[], %s::text[])"
            " AS u(id, traits, trait_events) WHERE profiles.id = u.id",
            [now_ms, *columns(touched, 3)],
        )
    links = [
        (event_id, plan.final(link.profile_id), f"{link.converted_by[0]}:{link.converted_by[1]}")
        for event_id, link in plan.links.items()
    ]
    if links:
        await conn.execute(
            "UPDATE events SET profile_id = u.profile_id, converted_ms = %s,"
            " converted_by = u.converted_by"
            " FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(id, profile_id, converted_by)"
            " WHERE events.id = u.id AND events.profile_id IS NULL",
            [now_ms, *columns(links, 3)],
        )


async def live_profile(conn: Conn, profile_id: str) -> str | None:
    """The live profile an id stands for (following a merge), or None if unknown."""
    cursor = await conn.execute(
        "SELECT id, merged_into FROM profiles WHERE id = %s", (pg_text(profile_id),)
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return str(row[1] or row[0])


async def session_profile(conn: Conn, session_id: str) -> str | None:
    """The live profile a known session belongs to, or None if the session is unknown."""
    cursor = await conn.execute(
        "SELECT profile_id FROM sessions WHERE id = %s", (pg_text(session_id),)
    )
    row = await cursor.fetchone()
    return await live_profile(conn, row[0]) if row else None
