"""Insights over many stored events: fill a SQLite store (10 million events over 30 days by
default, 20 types, 5 sources), then time counts through the real query service.

    .venv/bin/python bench/insights_query.py [--events 10000000] [--db bench/results/10m.db]

The store is built once through the real migrations (so the rollup triggers count every row,
as in production) and reused when the file exists. Each query runs several times; the median
and the maximum are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from eventstitch.config import load_config
from eventstitch.context import AppContext
from eventstitch.ids import now_ms
from eventstitch.query import service
from eventstitch.query.schemas import parse_group_by
from eventstitch.storage import open_storage
from eventstitch.storage.records import EventFilter
from eventstitch.storage.sqlite.backend import SqliteStorage

HERE = Path(__file__).resolve().parent
DAY_MS = 86_400_000
CHUNK = 1_000_000

# Rows are generated inside SQLite (a recursive CTE): ids are UUIDv7-shaped, time-ordered
# strings built from the receipt time, so time filters work as on real data.
FILL = """
WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2 - 1)
INSERT INTO events (id, type, source_id, received_ms, profile_less, profile_id, session_id,
                    properties, context)
SELECT printf('%08x-%04x-7%03x-8%03x-%012x', ms / 65536, ms % 65536, i % 4096, i % 4096, i),
       'type-' || (i % 20), 'source-' || (i % 5), ms, 1, NULL, NULL,
       json_object('user', 'user-' || (i % 50000), 'plan', CASE i % 3 WHEN 0 THEN 'free'
                   WHEN 1 THEN 'pro' ELSE 'team' END, 'amount', i % 1000),
       '{"method":"POST"}'
FROM (SELECT i, ?3 + i * ?4 / ?5 AS ms FROM n)
"""


# The same rows for PostgreSQL (generate_series; the rollup triggers count them).
FILL_POSTGRES = """
INSERT INTO events (id, type, source_id, received_ms, profile_less, profile_id, session_id,
                    properties, context)
SELECT lpad(to_hex(ms / 65536), 8, '0') || '-' || lpad(to_hex(ms %% 65536), 4, '0') || '-7'
       || lpad(to_hex(i %% 4096), 3, '0') || '-8' || lpad(to_hex(i %% 4096), 3, '0') || '-'
       || lpad(to_hex(i), 12, '0'),
       'type-' || (i %% 20), 'source-' || (i %% 5), ms, true, NULL, NULL,
       jsonb_build_object('user', 'user-' || (i %% 50000), 'plan', CASE i %% 3 WHEN 0 THEN 'free'
                          WHEN 1 THEN 'pro' ELSE 'team' END, 'amount', i %% 1000),
       '{"method":"POST"}'::jsonb
FROM (SELECT i, %(start)s::bigint + i * %(span)s::bigint / %(total)s AS ms
      FROM generate_series(%(first)s::bigint, %(last)s::bigint - 1) AS i) AS rows
"""


async def build_postgres(url: str, events: int) -> None:
    """Fill a PostgreSQL store the same way (rows generated inside the server)."""
    import psycopg

    storage = open_storage(load_config({}, database_url=url))
    await storage.start()
    await storage.close()
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        have = int(row[0]) if row else 0
        if have >= events:
            print(f"reusing the PostgreSQL store ({have} events)")
            return
        if have:
            raise SystemExit(f"the store holds {have} events, fewer than asked: empty it first")
        span = 30 * DAY_MS
        start = now_ms() - span
        started = time.perf_counter()
        for first in range(0, events, CHUNK):
            last = min(first + CHUNK, events)
            params = {"start": start, "span": span, "total": events, "first": first, "last": last}
            conn.execute(FILL_POSTGRES, params)
            rate = last / (time.perf_counter() - started)
            print(f"  {last} events stored ({rate:.0f}/s)", flush=True)
        conn.execute("VACUUM ANALYZE events")
        conn.execute("VACUUM ANALYZE event_counts_hourly")


async def build(path: Path, events: int) -> None:
    storage = SqliteStorage(path)
    await storage.start()
    await storage.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    (have,) = conn.execute("SELECT count(*) FROM events").fetchone()
    if have >= events:
        print(f"reusing {path} ({have} events)")
        return
    if have:
        raise SystemExit(f"{path} holds {have} events, fewer than asked: remove it first")
    span = 30 * DAY_MS
    start = now_ms() - span
    started = time.perf_counter()
    for first in range(have, events, CHUNK):
        last = min(first + CHUNK, events)
        conn.execute("BEGIN")
        conn.execute(FILL, (first, last, start, span, events))
        conn.execute("COMMIT")
        rate = last / (time.perf_counter() - started)
        print(f"  {last} events stored ({rate:.0f}/s)", flush=True)
    conn.execute("ANALYZE")
    conn.close()


async def timed(ctx: AppContext, label: str, repeats: int, **query: Any) -> dict[str, Any]:
    event_filter = EventFilter(
        since_ms=query.get("since_ms"),
        properties=tuple(query.get("properties", ())),
    )
    times = []
    answer: dict[str, Any] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        answer = await service.count(
            ctx=ctx, event_filter=event_filter, group_by=parse_group_by(query["by"]), distinct=None
        )
        times.append(time.perf_counter() - started)
    row = {
        "query": label,
        "median_ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
        "rows": len(answer["rows"]),
        "total": answer["total"],
        "from_rollup": answer["from_rollup"],
    }
    print(
        f"| {label} | {row['median_ms']:.1f} | {row['max_ms']:.1f} | {row['rows']} "
        f"| {row['total']} | {'rollup' if row['from_rollup'] else 'scan'} |",
        flush=True,
    )
    return row


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, default=HERE / "results" / "insights.db")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--database-url", default="", help="a postgresql:// URL instead")
    args = parser.parse_args()
    if args.database_url:
        await build_postgres(args.database_url, args.events)
        url = args.database_url
    else:
        args.db.parent.mkdir(parents=True, exist_ok=True)
        await build(args.db, args.events)
        url = f"sqlite:///{args.db}"
    config = load_config(
        {}, database_url=url, query_timeout_ms=120_000, max_insight_buckets=100_000
    )
    storage = open_storage(config)
    ctx = AppContext.build(config, storage)
    await storage.start()
    hour = 3_600_000
    now = now_ms()
    week = now - now % hour - 7 * DAY_MS
    month = now - now % hour - 30 * DAY_MS
    print("| query | median ms | max ms | rows | events counted | read from |")
    print("|---|---|---|---|---|---|")
    try:
        await timed(ctx, "by=hour,type, 7 days", args.repeats, by="hour,type", since_ms=week)
        await timed(ctx, "by=hour,type, 30 days", args.repeats, by="hour,type", since_ms=month)
        await timed(ctx, "by=day, 30 days", args.repeats, by="day", since_ms=month)
        await timed(ctx, "by=type, all", args.repeats, by="type")
        await timed(ctx, "by=source, all", args.repeats, by="source")
        await timed(
            ctx,
            "by=hour, properties.plan=pro, 7 days (scan)",
            1,
            by="hour",
            since_ms=week,
            properties=[(("plan",), "pro")],
        )
        await timed(
            ctx, "by=properties.plan, 7 days (scan)", 1, by="properties.plan", since_ms=week
        )
    finally:
        await storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
