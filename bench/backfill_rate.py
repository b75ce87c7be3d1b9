"""Backfill rate: stored profile-less events converted per second when a rule is added later.

    .venv/bin/python bench/backfill_rate.py [--events 1000000] [--emails 50000]

Fills a SQLite store with webhook events (emails from a pool, so that many events share a
profile), adds an identification rule to the source, and times `identity backfill` through
the real service (the same code as `eventstitch identity backfill`).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from eventstitch.config import load_config
from eventstitch.context import AppContext
from eventstitch.identity import service
from eventstitch.ids import now_ms
from eventstitch.sources import service as sources_service
from eventstitch.sources.schemas import SourceCreate, SourcePatch
from eventstitch.storage import open_storage

FILL = """
WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2 - 1)
INSERT INTO events (id, type, source_id, received_ms, profile_less, profile_id, session_id,
                    properties, context)
SELECT printf('%08x-%04x-7%03x-8%03x-%012x', ms / 65536, ms % 65536, i % 4096, i % 4096, i),
       'order', 'shop', ms, 1, NULL, NULL,
       json_object('email', 'customer-' || (i % ?5) || '@example.com', 'total', i % 500),
       '{}'
FROM (SELECT i, ?3 + i * 10 AS ms FROM n)
"""


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--emails", type=int, default=50_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="eventstitch-backfill-"))
    config = load_config({}, data_dir=folder, system_events=True)
    ctx = AppContext.build(config, open_storage(config))
    await ctx.storage.start()
    await sources_service.create(ctx=ctx, source_in=SourceCreate(id="shop", name="Shop"))
    conn = sqlite3.connect(folder / "eventstitch.db", isolation_level=None)
    start = now_ms() - args.events * 10
    for first in range(0, args.events, 500_000):
        conn.execute("BEGIN")
        conn.execute(FILL, (first, min(first + 500_000, args.events), start, 0, args.emails))
        conn.execute("COMMIT")
    conn.close()
    print(f"stored {args.events} events carrying {args.emails} distinct emails", flush=True)
    rule = {"path": "email", "kind": "email", "create_profile": True}
    await sources_service.update(
        ctx=ctx, source_id="shop", patch=SourcePatch.model_validate({"identification": [rule]})
    )
    started = time.perf_counter()
    report = await service.backfill(ctx=ctx, source_id="shop")
    elapsed = time.perf_counter() - started
    await ctx.storage.close()
    print(
        f"backfill: {report['events']} events read, {report['linked']} linked, "
        f"in {elapsed:.1f} s: {report['events'] / elapsed:.0f} events/s"
    )
    return 0 if report["linked"] == args.events else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
