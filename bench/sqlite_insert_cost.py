"""CPU time of the SQLite writer's insert per event, and what each part of the schema adds.

    .venv/bin/python bench/sqlite_insert_cost.py [--events 30000] [--batches 8,32] [--rounds 3]

Makes a fresh database through the real migrations (a temporary folder), then inserts
`--events` webhook events with the writer's own statement (`storage/sqlite/rows.py`: the
checked insert, whose source check rides inside it) in batches of each size, on a copy of the
database for each variant:

- `as shipped`: the schema as migrated;
- `no rollup trigger`: without the trigger that counts each row into `event_counts_hourly`;
- `no type/source indexes`: without `events_by_type` and `events_by_source`;
- `unchecked insert`: a plain multi-row INSERT, no source check;
- `bare`: neither the trigger nor those two indexes.

Ids are UUIDv7, as the collector mints them (time-ordered: each index grows at its end).
`--synchronous OFF` by default, so that the figure is the insert's CPU and not the disk's
flush; `--synchronous FULL` (what the collector runs) adds each commit's fsync, a cost per
commit that small batches share among few events. Prints the best of `--rounds` per variant
and batch size, in microseconds of CPU per event (the process's user and system time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson
import uuid_utils

from eventstitch.storage.sqlite import rows

PROPERTIES = orjson.dumps(
    {
        "url": "https://example.com/pricing",
        "user": "John",
        "email": "a@a.com",
        "plan": {"name": "pro", "seats": 5},
    }
).decode()
"""bench/post_event.lua's body, and below the context the webhook bridge stores with it."""
CONTEXT = orjson.dumps(
    {
        "method": "POST",
        "content_type": "application/json",
        "body_kind": "object",
        "user_agent": None,
        "client": "127.0.0.1",
        "query": "",
        "headers": {
            "host": "127.0.0.1:8000",
            "content-length": "113",
            "content-type": "application/json",
        },
    }
).decode()
KINDS = ",webhook,"
VARIANTS = {
    "as shipped": [],
    "no rollup trigger": ["DROP TRIGGER events_count_insert"],
    "no type/source indexes": ["DROP INDEX events_by_type", "DROP INDEX events_by_source"],
    "unchecked insert": [],
    "bare": [
        "DROP TRIGGER events_count_insert",
        "DROP INDEX events_by_type",
        "DROP INDEX events_by_source",
    ],
}


async def migrated_database(folder: Path) -> Path:
    """A database file with every migration applied and one webhook source, `bench`."""
    os.environ["EVENTSTITCH_DATA_DIR"] = str(folder)
    os.environ["EVENTSTITCH_SQLITE_WRITER"] = "THREAD"
    from eventstitch.config import load_config
    from eventstitch.context import AppContext
    from eventstitch.sources import service as sources
    from eventstitch.sources.schemas import SourceCreate
    from eventstitch.storage import open_storage

    config = load_config()
    ctx = AppContext.build(config, open_storage(config))
    await ctx.storage.start()
    try:
        await sources.create(ctx=ctx, source_in=SourceCreate(id="bench", name="Bench"))
    finally:
        await ctx.storage.close()
    return folder / "eventstitch.db"


def cpu_per_event(
    template: Path, work: Path, variant: str, batch: int, events: int, synchronous: str
) -> float:
    """Microseconds of CPU per event to insert `events` in batches of `batch`."""
    copy = work / f"{variant.replace(' ', '-').replace('/', '-')}-{batch}.db"
    shutil.copyfile(template, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        for statement in VARIANTS[variant]:
            conn.execute(statement)
        checked = variant != "unchecked insert"
        sql = (
            rows.checked_insert_sql(batch)
            if checked
            else rows.INSERT_EVENTS + ",".join([rows.EVENT_VALUES] * batch)
        )
        now = int(time.time() * 1000)
        extra = (KINDS,) if checked else ()
        batches = [
            [
                (
                    str(uuid_utils.uuid7()),
                    "page.view",
                    "bench",
                    now,
                    1,
                    None,
                    None,
                    PROPERTIES,
                    CONTEXT,
                    *extra,
                )
                for _ in range(batch)
            ]
            for _ in range(events // batch)
        ]
        started = time.process_time()
        for batch_rows in batches:
            inserted = rows.insert_rows(conn, sql, batch_rows)
            if inserted != batch:
                raise SystemExit(f"{variant}: {inserted} of {batch} rows went in")
        return (time.process_time() - started) / (len(batches) * batch) * 1e6
    finally:
        conn.close()
        copy.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000, help="events per measurement")
    parser.add_argument("--batches", default="8,32", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synchronous", choices=["OFF", "NORMAL", "FULL"], default="OFF")
    args = parser.parse_args()
    sizes = [int(size) for size in args.batches.split(",")]
    if not 1 <= args.events <= 2_000_000 or not 1 <= args.rounds <= 20:
        parser.error("keep it bounded: 1-2 000 000 events, 1-20 rounds")
    if not all(1 <= size <= 500 for size in sizes):
        parser.error("batch sizes are 1-500 (the writer's own batch limit)")
    with tempfile.TemporaryDirectory(prefix="eventstitch-insert-") as folder:
        work = Path(folder)
        template = asyncio.run(migrated_database(work / "data"))
        print("| variant | " + " | ".join(f"batch {size}" for size in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for variant in VARIANTS:
            cells = []
            for size in sizes:
                best = min(
                    cpu_per_event(template, work, variant, size, args.events, args.synchronous)
                    for _ in range(args.rounds)
                )
                cells.append(f"{best:.1f} µs")
            print(f"| {variant} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
