"""Insights over many realistic events: fill a store (10 million events over 30 days by default:
Stripe-, GitHub-, Shopify-, Alertmanager-shaped and monitoring payloads, 20 types, 5 sources,
30 % linked to profiles; bench/insights_payloads.py), write the columnar segments, then time
aggregates through the insights service next to the same query forced to the store-only scan.

    .venv/bin/python bench/insights_query.py [--events 10000000] [--db bench/results/insights.db]
        [--repeats 5] [--scan-cap 60] [--skip-scan] [--database-url postgresql://...]

The store is built once through the real migrations (so the rollup triggers count every row,
as in production) and reused when it holds enough events; the segments are written from
scratch after a build and brought up to date otherwise. Each query calls
`eventstitch.query.insights.get` in this process, with its parameters parsed exactly as
`GET /api/insights` parses them (no HTTP): a first run with the per-process segment caches
emptied (columnar/partials.py and value_parts.py: every segment read), then `--repeats` timed
runs, median and maximum, which find in the caches what the first run left there, as a
dashboard asking again would (after the segments it left to be read behind it are read,
columnar/behind.py, timed apart). An answer served by the scan is timed once (it is the
store-only path already). The store-only path runs each query once more with the segments
out of reach (an empty data folder) and an `until` just after the newest event, which the
rollup does not take (it needs whole hours) and which changes no number; it is stopped at
`--scan-cap` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eventstitch.columnar import partials, segments, value_parts
from eventstitch.columnar.behind import BEHIND
from eventstitch.config import load_config
from eventstitch.context import AppContext
from eventstitch.errors import EventstitchError
from eventstitch.heap import freeze_startup_objects
from eventstitch.ids import now_ms
from eventstitch.query import insights
from eventstitch.query.insight_params import parse_query, split_property_params
from eventstitch.query.schemas import property_filters
from eventstitch.storage import open_storage
from eventstitch.storage.records import EventFilter
from eventstitch.storage.sqlite.backend import SqliteStorage
from insights_payloads import POSTGRES, SQLITE, Dialect, G, columns

HERE = Path(__file__).resolve().parent
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
CHUNK = 500_000
PROFILES = 60_000
"""A linked event belongs to the profile of the person its emails name (`user<N>@...`)."""

# The queries of issue 13, each as the query string of GET /api/insights.
QUERIES = [
    ("counts by type per hour", "by=hour,type"),
    ("group by a top-level property", "by=properties.status"),
    ("group by a property 3 deep", "by=properties.data.object.currency"),
    ("sum of amount by currency", "metric=sum:properties.data.object.amount"
     "&by=properties.data.object.currency"),
    ("p95 of duration_ms by host", "metric=p95:properties.duration_ms&by=properties.host"),
    ("distinct emails", "metric=count_distinct:properties.data.object.billing_details.email"),
    ("severity=critical by alertname", "properties.commonLabels.severity=critical"
     "&by=properties.commonLabels.alertname"),
    ("amount > 400.00 by country", "properties.data.object.amount[gt]=40000"
     "&by=properties.data.object.billing_details.address.country"),
]  # fmt: skip


def fill_sql(d: Dialect) -> str:
    """One INSERT of the rows numbered `first` to `last` - 1 spread over [start, start + span),
    generated inside the database; ids are time-ordered UUIDv7-shaped strings."""
    c = columns(d)
    if d is SQLITE:
        rows = "WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n "
        rows += "WHERE i < :last - 1)"
        event_id = (
            "printf('%08x-%04x-7%03x-8%03x-%012x', ms / 65536, ms % 65536, i % 4096, i % 4096, i)"
        )
        profile = f"printf('00000000-0000-7000-8000-%012x', ({G} >> 8) % {PROFILES})"
        series = "n"
    else:
        rows = ""
        hexed = [("ms / 65536", 8), ("ms % 65536", 4), ("i % 4096", 3), ("i % 4096", 3), ("i", 12)]
        parts = [f"lpad(to_hex({e}), {w}, '0')" for e, w in hexed]
        event_id = (
            " || '-' || ".join(parts[:2])
            + f" || '-7' || {parts[2]} || '-8' || {parts[3]} || '-' || {parts[4]}"
        )
        profile = f"'00000000-0000-7000-8000-' || lpad(to_hex(({G} >> 8) % {PROFILES}), 12, '0')"
        series = "generate_series(%(first)s::bigint, %(last)s::bigint - 1) AS i"
    sql = f"""{rows}
INSERT INTO events (id, type, source_id, received_ms, profile_less, profile_id, session_id,
                    properties, context)
SELECT {event_id}, {c["type"]}, {c["source_id"]}, ms, NOT linked,
       CASE WHEN linked THEN {profile} END, NULL, {c["properties"]}, {c["context"]}
FROM (SELECT i, ms, {c["t"]} AS t, ({G} >> 3) % 10 < 3 AS linked
      FROM (SELECT i, :start + i * :span / :total AS ms FROM {series}) AS timed) AS typed"""
    if d is POSTGRES:
        sql = sql.replace("%", "%%").replace("%%(first)s", "%(first)s")
        sql = sql.replace("%%(last)s", "%(last)s")
        for name in ("start", "span", "total"):
            sql = sql.replace(f":{name}", f"%({name})s::bigint")
    return sql


def _fill(execute: Any, events: int) -> None:
    span = 30 * DAY_MS
    start = now_ms() - span
    started = time.perf_counter()
    for first in range(0, events, CHUNK):
        last = min(first + CHUNK, events)
        execute({"first": first, "last": last, "start": start, "span": span, "total": events})
        rate = last / (time.perf_counter() - started)
        print(f"  {last} events stored ({rate:.0f}/s)", flush=True)


async def build_postgres(url: str, events: int) -> bool:
    """Fill a PostgreSQL store the same way; whether it was built now (else reused)."""
    import psycopg

    storage = open_storage(load_config({}, database_url=url))
    await storage.start()
    await storage.close()
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        have = int(row[0]) if row else 0
        if have >= events:
            print(f"reusing the PostgreSQL store ({have} events)")
            return False
        if have:
            raise SystemExit(f"the store holds {have} events, fewer than asked: empty it first")
        conn.execute(
            "INSERT INTO profiles (id, created_ms, updated_ms) SELECT '00000000-0000-7000-8000-'"
            " || lpad(to_hex(n), 12, '0'), 0, 0 FROM generate_series(0, %s - 1) AS n",
            (PROFILES,),
        )
        sql = fill_sql(POSTGRES)
        _fill(lambda params: conn.execute(sql, params), events)
        conn.execute("VACUUM ANALYZE events")
        conn.execute("VACUUM ANALYZE event_counts_hourly")
    return True


async def build(path: Path, events: int) -> bool:
    """Fill a SQLite store; whether it was built now (else reused)."""
    storage = SqliteStorage(path)
    await storage.start()
    await storage.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    (have,) = conn.execute("SELECT count(*) FROM events").fetchone()
    if have >= events:
        print(f"reusing {path} ({have} events)")
        return False
    if have:
        raise SystemExit(f"{path} holds {have} events, fewer than asked: remove it first")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1) "
        "INSERT INTO profiles (id, created_ms, updated_ms) "
        "SELECT printf('00000000-0000-7000-8000-%012x', i), 0, 0 FROM n",
        (PROFILES,),
    )
    sql = fill_sql(SQLITE)

    def execute(params: dict[str, int]) -> None:
        conn.execute("BEGIN")
        conn.execute(sql, params)
        conn.execute("COMMIT")

    _fill(execute, events)
    conn.execute("ANALYZE")
    conn.close()
    return True


async def fill_span(path: Path, events: int, start: int, span: int) -> None:
    """A new SQLite store at `path` holding `events` of these payloads within
    [start, start + span), in one INSERT (for the benches of one segment or one hour)."""
    storage = SqliteStorage(path)
    await storage.start()
    await storage.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    window = {"first": 0, "last": events, "start": start, "span": span, "total": events}
    conn.execute(fill_sql(SQLITE), window)
    conn.execute("COMMIT")
    conn.close()


async def write_segments(ctx: AppContext, fresh: bool) -> None:
    """Write the columnar segments (all of them after a build, else those missing)."""
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % max(1, total // 10) == 0 or done == total:
            print(f"  segments: {done}/{total} hours ({time.perf_counter() - started:.0f} s)")

    written = await segments.rebuild(ctx=ctx, from_scratch=fresh, progress=progress)
    files = segments.files(ctx)
    size = sum(f.stat().st_size for f in files)
    print(
        f"segments: {written} written {'from scratch' if fresh else 'past the checkpoint'} in "
        f"{time.perf_counter() - started:.1f} s; {len(files)} files, {size / 1e6:.0f} MB in "
        f"{segments.folder(ctx)}",
        flush=True,
    )


def context(url: str, data_dir: Path, cap_s: float) -> AppContext:
    config = load_config(
        {},
        database_url=url,
        data_dir=data_dir,
        query_timeout_ms=int(cap_s * 1000),
        max_insight_buckets=100_000,  # 30 days of hours by 20 types is 14 400 rows
        max_insight_groups=100_000,
        max_insight_values=20_000_000,  # a scan's p95 over 30 days holds 2 million numbers
    )
    return AppContext.build(config, open_storage(config))


def request(
    ctx: AppContext, qs: str, since: int | None, until: int | None
) -> tuple[EventFilter, Any]:
    """The filter and query GET /api/insights would make of this query string."""
    params = parse_qsl(qs)
    equalities, comparisons = split_property_params(params)
    named = dict(params)
    query = parse_query(
        metric=named.get("metric"),
        by=named.get("by"),
        tz=None,
        top=None,
        comparisons=comparisons,
        max_groups=ctx.config.max_insight_groups,
    )
    event_filter = EventFilter(
        since_ms=since, until_ms=until, properties=property_filters(equalities)
    )
    return event_filter, query


async def run(
    ctx: AppContext, qs: str, since: int | None, until: int | None = None
) -> tuple[float, dict[str, Any] | str]:
    """Seconds taken and the answer, or the refusal's reason."""
    event_filter, query = request(ctx, qs, since, until)
    started = time.perf_counter()
    try:
        answer: dict[str, Any] | str = await insights.get(
            ctx=ctx, event_filter=event_filter, query=query
        )
    except EventstitchError as exc:
        answer = exc.reason
    return time.perf_counter() - started, answer


def same(a: dict[str, Any] | str, b: dict[str, Any] | str) -> str:
    """Whether two answers hold the same numbers (empty buckets aside)."""
    if isinstance(a, str) or isinstance(b, str):
        return "-"

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(str(r[k]) for k in sorted(r) if k != "value")

    ra = {key(r): r["value"] for r in a["rows"] if r["count"]}
    rb = {key(r): r["value"] for r in b["rows"] if r["count"]}
    close = ra.keys() == rb.keys() and all(
        ra[k] == rb[k] or math.isclose(float(ra[k]), float(rb[k]), rel_tol=1e-9) for k in ra
    )
    return "yes" if a["total"] == b["total"] and close else "NO"


def ms(seconds: float) -> str:
    """A duration for the table: milliseconds below 10 s, else seconds."""
    return f"{seconds * 1000:,.1f} ms".replace(",", " ") if seconds < 10 else f"{seconds:.1f} s"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    mem = Path("/proc/meminfo").read_text().split()[1]
    return (
        f"{os.cpu_count()} CPUs ({model}), {int(mem) / 1024**2:.0f} GiB, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, DuckDB {duckdb.__version__}"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, default=HERE / "results" / "insights.db")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scan-cap", type=float, default=60.0, help="seconds per scan")
    parser.add_argument("--skip-scan", action="store_true", help="no store-only runs")
    parser.add_argument("--database-url", default="", help="a postgresql:// URL instead")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.database_url:
        fresh = await build_postgres(args.database_url, args.events)
        url, data_dir = args.database_url, args.db.parent / "insights-postgres.data"
    else:
        fresh = await build(args.db, args.events)
        url, data_dir = f"sqlite:///{args.db}", args.db.with_suffix(".data")
    if fresh:
        print(f"store built in {time.perf_counter() - started:.0f} s")
    print(f"peak RSS after the store: {peak_rss_mb():.0f} MB")
    ctx = context(url, data_dir, args.scan_cap)
    empty = tempfile.TemporaryDirectory(prefix="insights-no-segments-")
    scan_ctx = context(url, Path(empty.name), args.scan_cap)
    await ctx.storage.start()
    await scan_ctx.storage.start()
    results: list[dict[str, Any]] = []
    try:
        await write_segments(ctx, fresh)
        print(f"peak RSS after the segments: {peak_rss_mb():.0f} MB")
        # What `serve` does once its start-up is over (src/eventstitch/heap.py): without it
        # the collector walks this process's whole heap while an answer's rows are built.
        freeze_startup_objects()
        BEHIND.open()  # as `serve`'s start does: answers may leave segments to read behind them
        newest = await ctx.storage.events.list_page(EventFilter(), limit=1, before_id=None)
        last = newest[0].received_ms if newest else now_ms()
        week = last // HOUR_MS * HOUR_MS + HOUR_MS - 7 * DAY_MS
        until = last + 1 if (last + 1) % HOUR_MS else last + 2
        for label, qs in QUERIES:
            for window, since in (("7 days", week), ("30 days", None)):
                partials.clear()  # the first run reads every segment: nothing is cached
                value_parts.clear()
                took, answer = await run(ctx, qs, since)  # the warm-up, or a scan's one run
                behind_started = time.perf_counter()
                BEHIND.wait()  # segments the first answer left to be read behind it
                behind = time.perf_counter() - behind_started
                times = [took]
                engine = answer if isinstance(answer, str) else answer["engine"]
                repeated = "-"
                if engine != "scan" and not isinstance(answer, str):
                    runs = [await run(ctx, qs, since) for _ in range(args.repeats)]
                    times = [took for took, _ in runs]
                    repeated = "yes" if all(same(answer, a) == "yes" for _, a in runs) else "NO"
                row: dict[str, Any] = {"label": label, "qs": qs, "window": window, "since": since}
                row |= {"engine": engine, "median": statistics.median(times), "max": max(times),
                        "runs": len(times), "answer": answer, "first": took,
                        "repeated": repeated, "behind": behind}  # fmt: skip
                results.append(row)
                read = "" if isinstance(answer, str) else answer.get("segments", "")
                print(f"  {label}, {window}: {engine}, first {ms(took)} (then {ms(behind)} "
                      f"behind it), median {ms(row['median'])} {read}", flush=True)  # fmt: skip
        print(f"peak RSS after the insights queries: {peak_rss_mb():.0f} MB", flush=True)
        for row in results if not args.skip_scan else ():
            if row["engine"] in ("scan", "query_timeout"):  # the service scanned already
                row["scan"], row["scan_engine"] = row["median"], "the same run"
                continue
            took, answer = await run(scan_ctx, row["qs"], row["since"], until)
            row["scan"] = took
            row["scan_engine"] = answer if isinstance(answer, str) else answer["engine"]
            row["same"] = same(row["answer"], answer)
            print(f"  scan {row['label']}, {row['window']}: {ms(took)}", flush=True)
    finally:
        await ctx.storage.close()
        await scan_ctx.storage.close()
        empty.cleanup()
    print(f"\n{machine()}\n")
    print("| query | window | engine | first run (nothing cached) | read behind it | median | max "
          "| runs | runs = first | rows | events | store-only scan | same numbers |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        answer = row["answer"]
        rows, total = (
            ("-", "-") if isinstance(answer, str) else (len(answer["rows"]), answer["total"])
        )
        stopped = f"> {args.scan_cap:.0f} s (stopped)"
        scan = "skipped"
        if row.get("scan_engine") == "the same run":
            scan = "= the service's run"
        elif "scan" in row:
            scan = f"{ms(row['scan'])} ({row['scan_engine']})"
            if row["scan_engine"] == "query_timeout":
                scan = stopped
        engine, median, most = row["engine"], ms(row["median"]), ms(row["max"])
        if engine == "query_timeout":
            engine, median, most = "scan", stopped, stopped
        first = ms(row["first"]) if engine != "scan" else "-"
        behind = ms(row["behind"]) if row.get("behind", 0) >= 0.0005 else "-"
        cells = [f"{row['label']}: `{row['qs']}`", row["window"], engine, first, behind]
        cells += [median, most]
        cells += [row["runs"], row["repeated"], rows, total, scan, row.get("same", "-")]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
