"""Delivery ids in a SQLite batch: copies of a delivery already seen are answered with the
first event, and what was stored is remembered for the idempotency window."""

from __future__ import annotations

import sqlite3
from typing import Any

from eventstitch.ids import now_ms
from eventstitch.storage.errors import DuplicateDelivery
from eventstitch.storage.shared.jobs import EventJob


def drop_duplicates(
    conn: sqlite3.Connection,
    events: list[tuple[int, EventJob]],
    keyed: list[tuple[int, EventJob]],
    results: list[Any],
    *,
    window_ms: int,
) -> list[tuple[int, EventJob]]:
    """Answer deliveries already seen (in this batch or within the window) with the event
    first stored for them, and leave them out of the insert."""
    pairs = list({(job.event.source_id, job.delivery_key) for _, job in keyed})
    marks = ",".join(["(?, ?)"] * len(pairs))
    seen = {
        (row[0], row[1]): row[2]
        for row in conn.execute(
            "SELECT source_id, key, event_id FROM delivery_keys"
            f" WHERE (source_id, key) IN (VALUES {marks}) AND seen_ms >= ?",
            [v for pair in pairs for v in pair] + [now_ms() - window_ms],
        )
    }
    kept = []
    for index, job in events:
        pair = (job.event.source_id, job.delivery_key)
        if job.delivery_key is not None and pair in seen:
            results[index] = DuplicateDelivery(seen[pair])
            continue
        if job.delivery_key is not None:
            seen[pair] = job.event.id  # a second copy later in this batch is a duplicate
        kept.append((index, job))
    return kept


def remember_deliveries(
    conn: sqlite3.Connection,
    keyed: list[tuple[int, EventJob]],
    results: list[Any],
    *,
    window_ms: int,
) -> None:
    """Record the delivery ids of the events just stored; forget expired ones."""
    now = now_ms()
    stored = [
        (job.event.source_id, job.delivery_key, job.event.id, now)
        for index, job in keyed
        if not isinstance(results[index], BaseException)
    ]
    if stored:
        conn.execute(
            "INSERT INTO delivery_keys (source_id, key, event_id, seen_ms) VALUES "
            + ",".join(["(?, ?, ?, ?)"] * len(stored))
            + " ON CONFLICT (source_id, key) DO UPDATE SET event_id = excluded.event_id,"
            " seen_ms = excluded.seen_ms",
            [v for row in stored for v in row],
        )
    conn.execute(
        "DELETE FROM delivery_keys WHERE rowid IN"
        " (SELECT rowid FROM delivery_keys WHERE seen_ms < ? LIMIT 500)",
        (now - window_ms,),
    )
