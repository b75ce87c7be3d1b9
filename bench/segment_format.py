"""Parquet or DuckDB's own file format for insight segments? The same synthetic columns (the
shape of columnar/shred.py: JSON text, integers, floats, most of them NULL in most rows)
written both ways, 30 day files of `--rows-per-day` rows, then the aggregates of
bench/insights_query.py timed over all of them: Parquet through one `read_parquet` of every
file (as columnar/query.py reads the segments), DuckDB files attached read-only and read
with one SELECT each under UNION ALL (as a trial of DuckDB-file segments did; measured on the
10 million realistic events too, and not adopted: docs/benchmarks.md).

    .venv/bin/python bench/segment_format.py [--rows-per-day 333333] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

DAYS = 30
ROWS = """SELECT {day}::BIGINT * 86400000 + i * 259 AS received_ms, 'type' || (i % 20) AS type,
  'src' || (i % 5) AS source_id,
  CASE WHEN i % 4 = 0 THEN '"' || ['usd','eur','gbp','jpy','cad','aud','chf'][1 + (i * 7) % 7]
    || '"' END AS t_currency,
  CASE WHEN i % 4 = 0 THEN (i * 7919) % 100000 END AS i_amount,
  CASE WHEN i % 3 = 0 THEN '"host-' || ((i * 31) % 50) || '"' END AS t_host,
  CASE WHEN i % 3 = 0 THEN ((i * 104729) % 100000) / 100.0 END AS f_duration,
  CASE WHEN i % 2 = 0 THEN '"' || ['ok','error','pending'][1 + (i % 3)] || '"' END AS t_status,
  CASE WHEN i % 4 = 0 THEN '"user' || ((i * 13) % 60000) || '@example.com"' END AS t_email
FROM range({rows}) t(i)"""
QUERIES = {
    "group by a string": "SELECT t_status, count(*) FROM {rows} GROUP BY ALL",
    "sum of an integer by a string": (
        "SELECT t_currency, count(*), sum(i_amount) FROM {rows} GROUP BY ALL"
    ),
    "p95 of a float by a string": (
        "SELECT t_host, count(*), quantile_cont(f_duration, 0.95) FROM {rows} GROUP BY ALL"
    ),
    "distinct strings": "SELECT count(*), count(DISTINCT t_email) FROM {rows}",
    "filter, then group": (
        "SELECT t_currency, count(*) FROM {rows} WHERE i_amount > 40000 GROUP BY ALL"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-day", type=int, default=333_333)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="segment-format-") as folder:
        where = Path(folder)
        con = duckdb.connect()
        con.execute(f"SET threads = {args.threads}")
        started = time.perf_counter()
        for day in range(DAYS):
            rows = ROWS.format(day=day, rows=args.rows_per_day)
            con.execute(f"COPY ({rows}) TO '{where}/d{day}.parquet' (FORMAT parquet)")
            con.execute(f"ATTACH '{where}/d{day}.duckdb' AS w{day}")
            con.execute(f"CREATE TABLE w{day}.events AS {rows}")
            con.execute(f"DETACH w{day}")
        print(f"wrote {DAYS} days x {args.rows_per_day} rows both ways in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        sizes = {
            kind: sum(p.stat().st_size for p in where.glob(f"*.{kind}")) / 2**20
            for kind in ("parquet", "duckdb")
        }
        for day in range(DAYS):
            con.execute(f"ATTACH '{where}/d{day}.duckdb' AS s{day} (READ_ONLY)")
        listed = [f"'{where}/d{day}.parquet'" for day in range(DAYS)]
        sources = {
            "parquet": f"read_parquet([{', '.join(listed)}], union_by_name = true)",
            "duckdb": "(" + " UNION ALL ".join(f"SELECT * FROM s{d}.events" for d in range(DAYS))
            + ")",
        }  # fmt: skip
        print(
            f"threads {args.threads}; files: Parquet {sizes['parquet']:.0f} MB, "
            f"DuckDB {sizes['duckdb']:.0f} MB; median of {args.repeats} after one warm-up"
        )
        print("| query | Parquet | DuckDB files | ratio |")
        print("|---|---|---|---|")
        for name, text in QUERIES.items():
            medians = {}
            for kind, source in sources.items():
                statement = text.format(rows=source)
                con.execute(statement).fetchall()
                times = []
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    con.execute(statement).fetchall()
                    times.append((time.perf_counter() - began) * 1000)
                medians[kind] = statistics.median(times)
            print(f"| {name} | {medians['parquet']:.1f} ms | {medians['duckdb']:.1f} ms | "
                  f"{medians['parquet'] / medians['duckdb']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
