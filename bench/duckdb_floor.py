"""What DuckDB itself takes on this machine to aggregate as many rows as an insights question
over 30 days reads, so the columnar engine's figures can be read against it.

    .venv/bin/python bench/duckdb_floor.py [--rows 10000000] [--threads 2]
        [--segments <data_dir>/insight-segments] [--layouts-in /tmp/layouts]

First an in-memory table of `--rows` rows: `count(*)` grouped by a 10-value string, the same
keys as an integer and as an ENUM, a `sum` by the integer and a 95th percentile by the string.
With `--segments` (the folder `insights rebuild` writes, for example the one
`bench/insights_query.py` fills), the same segments are also copied into three other layouts
(one Parquet file, one DuckDB table, one Parquet file sorted by type; written once into
`--layouts-in`, several GB for 10 million events) and four questions of
`bench/insights_query.py` are timed on each, shaped as the engine asks them. Medians of 5 after a
warm-up.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

import duckdb
import orjson


def timed(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> float:
    con.execute(sql, params or []).fetchall()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        con.execute(sql, params or []).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def column(path: list[str]) -> str:
    """A path's column id, as columnar/shred.py names it."""
    return hashlib.blake2b(orjson.dumps(path), digest_size=8).hexdigest()


def synthetic(rows: int, threads: int) -> None:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(
        "CREATE TABLE t AS SELECT (i % 10)::VARCHAR || 'abc' AS s, (i % 10)::UTINYINT AS k, "
        f"i AS n, random() AS f FROM range({rows}) r(i)"
    )
    con.execute("CREATE TYPE e AS ENUM (SELECT DISTINCT s FROM t)")
    con.execute("CREATE TABLE te AS SELECT s::e AS s FROM t")
    print(f"in-memory table, {rows} rows, {threads} threads:")
    for label, sql in (
        ("count by a 10-value string", "SELECT s, count(*) FROM t GROUP BY ALL"),
        ("count by the same keys as an integer", "SELECT k, count(*) FROM t GROUP BY ALL"),
        ("count by the same keys as an ENUM", "SELECT s, count(*) FROM te GROUP BY ALL"),
        ("sum by the integer key", "SELECT k, sum(n) FROM t GROUP BY ALL"),
        ("p95 by the string key", "SELECT s, quantile_cont(f, 0.95) FROM t GROUP BY ALL"),
    ):
        print(f"  {label}: {timed(con, sql):.1f} ms")


def layouts(segments: Path, into: Path, threads: int) -> None:
    files = sorted(str(f) for f in segments.glob("*.parquet"))
    into.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET memory_limit = '2GB'")
    merged, table, by_type = into / "one.parquet", into / "one.duckdb", into / "by-type.parquet"
    everything = "SELECT * FROM read_parquet(?, union_by_name = true)"
    if not merged.exists():
        con.execute(f"COPY ({everything.replace('?', repr(files))}) TO '{merged}'")
    if not by_type.exists():
        ordered = everything.replace("?", repr(files)) + " ORDER BY type, received_ms"
        con.execute(f"COPY ({ordered}) TO '{by_type}'")
    if not table.exists():
        built = duckdb.connect(str(table))
        built.execute("SET memory_limit = '2GB'")
        built.execute(f"CREATE TABLE ev AS {everything}", [files])
        built.close()
    con.execute(f"ATTACH '{table}' AS native (READ_ONLY)")
    status, currency = column(["status"]), column(["data", "object", "currency"])
    amount, host = column(["data", "object", "amount"]), column(["host"])
    duration = column(["duration_ms"])
    questions = {
        "by properties.status": f"SELECT coalesce(t_{status}, 'null'), count(*) FROM {{}} "
        "GROUP BY ALL",
        "sum of amount by currency": f"SELECT coalesce(t_{currency}, 'null'), count(*), "
        f"sum(i_{amount}) FROM {{}} GROUP BY ALL",
        "p95 of duration_ms by host": f"SELECT coalesce(t_{host}, 'null'), "
        f"quantile_cont(f_{duration}, 0.95) FROM {{}} GROUP BY ALL",
        "counts by type per hour": "SELECT received_ms // 3600000, type, count(*) FROM {} "
        "GROUP BY ALL",
    }
    sources = {
        f"{len(files)} segments (union by name)": (
            f"read_parquet({files!r}, union_by_name = true)"
        ),
        "one Parquet file": f"read_parquet('{merged}')",
        "one DuckDB table": "native.ev",
        "one Parquet file sorted by type": f"read_parquet('{by_type}')",
    }
    print(f"segments of {segments}, {threads} threads:")
    for label, sql in questions.items():
        for name, source in sources.items():
            print(f"  {label}, {name}: {timed(con, sql.format(source)):.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--segments", type=Path)
    parser.add_argument("--layouts-in", type=Path, default=Path("bench/results/layouts"))
    args = parser.parse_args()
    synthetic(args.rows, args.threads)
    if args.segments is not None:
        layouts(args.segments, args.layouts_in, args.threads)


if __name__ == "__main__":
    main()
