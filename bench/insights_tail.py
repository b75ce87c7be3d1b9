"""What the hot tail costs an insight question: every event after the last segment.

    .venv/bin/python bench/insights_tail.py [--events 100000] [--repeats 3] [--new 10000]
        [--database-url postgresql://.../an_empty_database]

The segments end `SEAL_MS` (10 s) before now, plus the span of a part and the time since the
last refresher round (columnar/segments.py), so an answer reads the events after them from the
store: at a sustained 1 000 events a second that is 20 000 to 50 000 events, at 10 000 ten
times as many.
This fills a SQLite store (in a temporary folder; or the empty PostgreSQL database of
`--database-url`, which it leaves filled) with `--events` realistic events received in
the last ten seconds (bench/insights_payloads.py, the payloads of bench/insights_query.py),
writes the segments (none: nothing is sealed yet, so every event is in the tail), then asks
bench/insights_query.py's questions over 7 days, alternating, question by question, the tail
read whole as values (`EventStore.values_page`, what the store does) and read whole as events
(the store told it cannot read values, as before). Prints the best of `--repeats` of each,
and checks that both give the same numbers.

Then it measures the tail kept per process (columnar/tail.py): each question is
asked once, then `--repeats` times, each after `--new` more events were committed (1 s at
10 000 events a second); it prints the best of those and checks the last answer against the
tail read whole at that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import insights_query as iq
from eventstitch.columnar import segments
from eventstitch.config import Config
from eventstitch.context import AppContext
from eventstitch.ids import now_ms

WEEK_MS = 7 * 86_400_000


def _window(events: int) -> dict[str, int]:
    return {"first": 0, "last": events, "start": now_ms() - 10_000, "span": 9_000, "total": events}


async def fill_postgres(url: str, events: int) -> None:
    """The same events in an empty PostgreSQL database, with the profiles they link to."""
    import psycopg

    storage = iq.open_storage(iq.load_config({}, database_url=url))
    await storage.start()
    await storage.close()
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        if row and row[0]:
            raise SystemExit("the database holds events already: give an empty one")
        conn.execute(
            "INSERT INTO profiles (id, created_ms, updated_ms) SELECT '00000000-0000-7000-8000-'"
            " || lpad(to_hex(n), 12, '0'), 0, 0 FROM generate_series(0, %s - 1) AS n",
            (iq.PROFILES,),
        )
        conn.execute(iq.fill_sql(iq.POSTGRES), _window(events))
        conn.execute("VACUUM ANALYZE events")


async def fill(folder: Path, events: int) -> None:
    """`events` events received over the last ten seconds in a SQLite store."""
    db = folder / "eventstitch.db"
    storage = iq.SqliteStorage(db)
    await storage.start()
    await storage.close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.execute(iq.fill_sql(iq.SQLITE), _window(events))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new", type=int, default=10_000, help="events between kept asks")
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database")
    args = parser.parse_args()
    if not 1 <= args.events <= 2_000_000 or not 1 <= args.repeats <= 20:
        parser.error("keep it bounded: 1-2 000 000 events, 1-20 repeats")
    if not 1 <= args.new <= 100_000:
        parser.error("keep it bounded: 1-100 000 new events")
    with tempfile.TemporaryDirectory(prefix="eventstitch-tail-") as name:
        folder = Path(name)
        started = time.perf_counter()
        url = args.database_url or f"sqlite:///{folder / 'eventstitch.db'}"
        if args.database_url:
            await fill_postgres(url, args.events)
        else:
            await fill(folder, args.events)
        print(f"{args.events} events stored in {time.perf_counter() - started:.1f} s")
        made = iq.context(url, folder, 120)
        # The tail read whole every time, as without columnar/tail.py: what the first table
        # compares (the second measures the tail kept).
        config = dataclasses.replace(made.config, columnar_tail_rows=0)
        ctx = AppContext.build(config, iq.open_storage(config))
        await ctx.storage.start()
        try:
            # Nothing sealed: filling a million events takes longer than the seal of 10 s.
            segments.SEAL_MS = 15 * 60_000
            await segments.rebuild(ctx=ctx, from_scratch=True)
            if segments.files(ctx):
                raise SystemExit("some events are already in segments: not a tail-only run")
            events = ctx.storage.events
            as_values = events.values_page

            async def cannot(*_: Any, **__: Any) -> None:
                return None  # as a store that does not read paths itself

            print(f"\n{args.events} events in the hot tail, best of {args.repeats}:\n")
            print("| question | tail as values | tail as whole events | same numbers |")
            print("|---|---|---|---|")
            for label, qs in iq.QUERIES[1:]:
                best = {"values": float("inf"), "whole": float("inf")}
                answers: dict[str, Any] = {}
                for _ in range(args.repeats):
                    for way in best:
                        events.values_page = as_values if way == "values" else cannot  # type: ignore[method-assign]
                        took, answer = await iq.run(ctx, qs, now_ms() - WEEK_MS)
                        best[way] = min(best[way], took)
                        answers[way] = answer
                events.values_page = as_values  # type: ignore[method-assign]
                same = iq.same(answers["values"], answers["whole"])
                print(f"| {label} | {iq.ms(best['values'])} | {iq.ms(best['whole'])} | {same} |")
            await kept(made.config, ctx, folder, args)
        finally:
            await ctx.storage.close()
    return 0


async def kept(config: Config, whole: AppContext, folder: Path, args: argparse.Namespace) -> None:
    """Each question asked again after `--new` more events, the tail kept (columnar/tail.py,
    the default EVENTSTITCH_COLUMNAR_TAIL_ROWS); `whole` reads it whole
    (EVENTSTITCH_COLUMNAR_TAIL_ROWS=0) to check the last answer."""
    ctx = AppContext.build(config, iq.open_storage(config))
    whole_config = dataclasses.replace(whole.config, columnar_tail_rows=0)
    check = AppContext.build(whole_config, iq.open_storage(whole_config))
    await ctx.storage.start()
    await check.storage.start()
    added = args.events
    try:
        print(f"\nThe tail kept: each question asked again after {args.new} new events,")
        print(f"best of {args.repeats}:\n")
        print("| question | tail after | first ask | asked again | read again | same numbers |")
        print("|---|---|---|---|---|---|")
        for label, qs in iq.QUERIES[1:]:
            first, _ = await iq.run(ctx, qs, now_ms() - WEEK_MS)
            best, read = float("inf"), 0
            answer: Any = None
            for _ in range(args.repeats):
                await asyncio.to_thread(add, args.database_url, folder, added, args.new)
                added += args.new
                took, answer = await iq.run(ctx, qs, now_ms() - WEEK_MS)
                if took < best and isinstance(answer, dict):
                    best, read = took, answer["tail"]["read"]
            _, expected = await iq.run(check, qs, now_ms() - WEEK_MS)
            same = iq.same(answer, expected)
            print(f"| {label} | {added} | {iq.ms(first)} | {iq.ms(best)} | {read} | {same} |")
    finally:
        await ctx.storage.close()
        await check.storage.close()


def add(url: str, folder: Path, first: int, count: int) -> None:
    """`count` more events received over the last second, committed as one transaction."""
    window = {"first": first, "last": first + count, "start": now_ms() - 1000, "span": 900}
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(iq.fill_sql(iq.POSTGRES), {**window, "total": count})
        return
    conn = sqlite3.connect(folder / "eventstitch.db", isolation_level=None)
    conn.execute("BEGIN")
    conn.execute(iq.fill_sql(iq.SQLITE), {**window, "total": count})
    conn.execute("COMMIT")
    conn.close()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
