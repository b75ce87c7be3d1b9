"""Identity inside the SQLite write transaction: read owners, let the resolver decide, write.

Runs on the writer thread inside the same `BEGIN IMMEDIATE` transaction as the events of the
batch, so two first contacts with one email, even from two processes, cannot both create a
profile: the second transaction sees the first one's identifier.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Container, Iterable, Sequence
from typing import Any

import orjson

from eventstitch.identity.resolution import ClaimItem, Plan, ProfileState, Resolver
from eventstitch.storage.records import Identifier
from eventstitch.storage.shared.claims import owners_from_rows, stored_claims

_MAX_PAIRS = 400  # (kind, value) pairs per statement: two bound values each


def store_event_identifiers(conn: sqlite3.Connection, items: Sequence[ClaimItem]) -> None:
    """Remember what each new event carried, for conversion when a profile learns it later."""
    rows = [
        (kind, value, item.event_id, position)
        for item in items
        for position, (kind, value) in enumerate(item.claim.identifiers)
    ]
    many(
        conn,
        "INSERT OR IGNORE INTO event_identifiers (kind, value, event_id, position) VALUES {rows}",
        rows,
    )
    # Traits too: an event linked later copies them then. Only events without a profile can
    # be linked later; a backfill re-reading one replaces them with what the current rules say.
    many(
        conn,
        "INSERT INTO event_traits (event_id, traits) VALUES {rows}"
        " ON CONFLICT (event_id) DO UPDATE SET traits = excluded.traits",
        [
            (item.event_id, orjson.dumps(dict(item.claim.traits)).decode())
            for item in items
            if item.claim.traits and item.claim.profile_id is None
        ],
    )


def many(conn: sqlite3.Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run a statement for many rows as few multi-row statements, not executemany: each
    statement step hands the GIL back and forth with the event loop thread, so one step for a
    whole batch is much cheaper than one per row. `{rows}` in `statement` takes the VALUES."""
    if not rows:
        return
    width = len(rows[0])
    per_statement = max(1, 30_000 // width)  # SQLite allows 32766 bound values
    marks = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), per_statement):
        part = rows[start : start + per_statement]
        conn.execute(
            statement.format(rows=",".join([marks] * len(part))),
            [value for row in part for value in row],
        )


def resolve(
    conn: sqlite3.Connection, items: Sequence[ClaimItem], resolver: Resolver, *, now_ms: int
) -> Plan:
    """Decide for the claims of stored events, then for every stored profile-less event that
    carries an identifier a profile gained meanwhile (and so on, until nothing changes); write
    the plan."""
    decide(conn, items, resolver)
    apply(conn, resolver, now_ms=now_ms)
    return resolver.plan


def decide(
    conn: sqlite3.Connection,
    items: Sequence[ClaimItem],
    resolver: Resolver,
    *,
    unstored: bool = False,
) -> Plan:
    """Decide as `resolve` does, reading only. With `unstored`, `items` are events about to be
    inserted (already linked, so that no UPDATE follows): the retroactive search cannot find
    them in the table, so those left unlinked are re-examined here when a later claim of the
    batch gives a profile one of their identifiers."""
    anchors = {item.claim.profile_id for item in items if item.claim.profile_id}
    if anchors:
        resolver.load((), load_profiles(conn, anchors - set(resolver.profiles)))
    pending = list(items)
    while pending:
        asked = resolver.unknown(i for item in pending for i in item.claim.identifiers)
        if asked:
            resolver.load(asked, _owners(conn, asked))
        for item in pending:
            resolver.resolve(item)
        fresh = resolver.take_fresh()
        pending = _stored_claims(conn, fresh, resolver.plan.links.keys())
        if unstored and fresh:
            pending += _waiting(items, set(fresh), resolver.plan.links.keys())
    return resolver.plan


def _waiting(
    items: Sequence[ClaimItem], fresh: set[Identifier], decided: Container[str]
) -> list[ClaimItem]:
    """Unlinked events of this batch that carry an identifier which just got an owner, as a
    stored event would be re-examined (so never creating a profile)."""
    return [
        dataclasses.replace(item, stored=True)
        for item in items
        if item.event_id not in decided and not fresh.isdisjoint(item.claim.identifiers)
    ]


def _chunks(identifiers: Iterable[Identifier]) -> Iterable[list[Identifier]]:
    chunk: list[Identifier] = []
    for identifier in identifiers:
        chunk.append(identifier)
        if len(chunk) == _MAX_PAIRS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _pairs_sql(chunk: list[Identifier]) -> tuple[str, list[str]]:
    return ",".join(["(?, ?)"] * len(chunk)), [v for pair in chunk for v in pair]


def _owners(conn: sqlite3.Connection, identifiers: Iterable[Identifier]) -> list[ProfileState]:
    """The profiles owning any of `identifiers`, each with all its identifiers, one query a
    chunk."""
    rows = []
    for chunk in _chunks(identifiers):
        marks, values = _pairs_sql(chunk)
        rows += conn.execute(
            "SELECT p.id, p.created_ms, p.traits, p.trait_events, held.kind, held.value"
            " FROM identifiers AS asked JOIN profiles AS p ON p.id = asked.profile_id"
            " JOIN identifiers AS held ON held.profile_id = p.id"
            f" WHERE (asked.kind, asked.value) IN (VALUES {marks})",
            values,
        ).fetchall()
    return owners_from_rows(rows)


def load_profiles(conn: sqlite3.Connection, profile_ids: Iterable[str]) -> list[ProfileState]:
    """Profiles with all their identifiers and traits."""
    ids = list(profile_ids)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    profiles = {
        row[0]: ProfileState(row[0], row[1], {}, orjson.loads(row[2]), orjson.loads(row[3]))
        for row in conn.execute(
            f"SELECT id, created_ms, traits, trait_events FROM profiles WHERE id IN ({marks})", ids
        )
    }
    for kind, value, profile_id in conn.execute(
        f"SELECT kind, value, profile_id FROM identifiers WHERE profile_id IN ({marks})", ids
    ):
        profiles[profile_id].identifiers.setdefault(kind, set()).add(value)
    return list(profiles.values())


def _stored_claims(
    conn: sqlite3.Connection, fresh: list[Identifier], decided: Iterable[str]
) -> list[ClaimItem]:
    """Profile-less events (stored, not yet linked) that carry any of `fresh`."""
    skip = set(decided)
    found: dict[str, int] = {}
    for chunk in _chunks(fresh):
        marks, values = _pairs_sql(chunk)
        for event_id, received_ms in conn.execute(
            "SELECT e.id, e.received_ms FROM event_identifiers AS ei"
            " JOIN events AS e ON e.id = ei.event_id"
            f" WHERE (ei.kind, ei.value) IN (VALUES {marks}) AND e.profile_id IS NULL",
            values,
        ):
            if event_id not in skip:
                found[event_id] = received_ms
    if not found:
        return []
    carried: dict[str, list[tuple[int, Identifier]]] = {event_id: [] for event_id in found}
    traits: dict[str, dict[str, Any]] = {}
    ids = list(found)
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        for event_id, kind, value, position in conn.execute(
            "SELECT event_id, kind, value, position FROM event_identifiers"
            f" WHERE event_id IN ({marks})",
            part,
        ):
            carried[event_id].append((position, (kind, value)))
        for event_id, text in conn.execute(
            f"SELECT event_id, traits FROM event_traits WHERE event_id IN ({marks})", part
        ):
            traits[event_id] = orjson.loads(text)
    return stored_claims(found, carried, traits)


def apply(
    conn: sqlite3.Connection, resolver: Resolver, *, now_ms: int, inserted: Container[str] = ()
) -> None:
    """Write what `decide` planned; the links of events in `inserted` went in with them."""
    plan = resolver.plan
    many(
        conn,
        "INSERT INTO profiles (id, created_ms, updated_ms, traits, trait_events) VALUES {rows}",
        [
            (p.id, p.created_ms, now_ms, _json(p.traits), _json(p.trait_events))
            for p in plan.created.values()
        ],
    )
    for merge in plan.merges:
        survivor, merged = merge.survivor, merge.merged
        conn.execute(
            "UPDATE identifiers SET profile_id = ? WHERE profile_id = ?", (survivor, merged)
        )
        conn.execute("UPDATE events SET profile_id = ? WHERE profile_id = ?", (survivor, merged))
        conn.execute("UPDATE sessions SET profile_id = ? WHERE profile_id = ?", (survivor, merged))
        conn.execute(
            "UPDATE profiles SET merged_into = ?, updated_ms = ? WHERE id = ? OR merged_into = ?",
            (survivor, now_ms, merged, merged),
        )
        conn.execute(
            "INSERT INTO profile_merges (survivor, merged, event_id, at_ms) VALUES (?, ?, ?, ?)",
            (survivor, merged, merge.event_id, merge.at_ms),
        )
    many(
        conn,
        "INSERT INTO profile_merges (survivor, merged, event_id, at_ms, refused_kind)"
        " VALUES {rows}",
        [(r.profiles[0], r.profiles[1], r.event_id, r.at_ms, r.kind) for r in plan.refused],
    )
    many(
        conn,
        "INSERT INTO identifiers (kind, value, profile_id, created_ms) VALUES {rows}",
        [(kind, value, plan.final(owner), now_ms) for (kind, value), owner in plan.attached],
    )
    conn.executemany(
        "UPDATE profiles SET traits = ?, trait_events = ?, updated_ms = ? WHERE id = ?",
        [
            (
                _json(resolver.profiles[p].traits),
                _json(resolver.profiles[p].trait_events),
                now_ms,
                p,
            )
            for p in plan.touched
            if p in resolver.profiles and p not in plan.created
        ],
    )
    many(
        conn,
        "UPDATE events SET profile_id = links.column2, converted_ms = links.column3,"
        " converted_by = links.column4 FROM (VALUES {rows}) AS links"
        " WHERE events.id = links.column1 AND events.profile_id IS NULL",
        [
            (
                event_id,
                plan.final(link.profile_id),
                now_ms,
                f"{link.converted_by[0]}:{link.converted_by[1]}",
            )
            for event_id, link in plan.links.items()
            if event_id not in inserted
        ],
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def live_profile(conn: sqlite3.Connection, profile_id: str) -> str | None:
    """The live profile an id stands for (following a merge), or None if unknown."""
    row = conn.execute(
        "SELECT id, merged_into FROM profiles WHERE id = ?", (profile_id,)
    ).fetchone()
    if row is None:
        return None
    return str(row[1] or row[0])


def session_profile(conn: sqlite3.Connection, session_id: str) -> str | None:
    """The live profile a known session belongs to, or None if the session is unknown."""
    row = conn.execute("SELECT profile_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return live_profile(conn, row[0]) if row else None
