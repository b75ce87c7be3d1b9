"""`/collect` with two identification rules against `/collect` with none, on one server, in one
run: the share of the rule-free throughput that identity resolution keeps.

    .venv/bin/python bench/collect_rules_ratio.py [--duration 6] [--connections 16,64]
                                                  [--repeat 3] [--database-url URL]
                                                  [--new-people]

Needs wrk (`apt-get install wrk`). Starts one `eventstitch serve` on a free 127.0.0.1 port in a
temporary data folder, with two webhook sources: `plain` (no rules) and `rules` (email creating
profiles, and phone). Every request carries the same email, so every event to `rules` goes
through resolution and is linked to one profile (the common case: people who come back); with
`--new-people` every request carries an email never seen, so every event to `rules` creates a
profile (the worst case). For each connection count and repetition it runs wrk against
`plain` and then against `rules`, seconds apart, so each ratio compares neighbouring runs on the
same process. At the end it checks that every acknowledged event is stored and (without
`--new-people`) that one profile holds the email. Prints a Markdown table and writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from collect_throughput import (
    HERE,
    api,
    checked_levels,
    free_port,
    load_arguments,
    machine,
    note_noise,
    peak_rss_mb,
    run_wrk,
    server_env,
    start,
    stop,
    wait_until_up,
    write_result,
)

RULES = [
    {"path": "email", "kind": "email", "create_profile": True},
    {"path": "phone", "kind": "phone"},
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    load_arguments(parser, duration=6, connections="16,64")
    parser.add_argument(
        "--new-people",
        action="store_true",
        help="every request carries an email never seen before (each event creates a profile)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    levels = checked_levels(parser, args)
    work = Path(tempfile.mkdtemp(prefix="eventstitch-bench-"))
    env = server_env(work, args.database_url)
    script = HERE / ("post_event_new_people.lua" if args.new_people else "post_event.lua")
    port = free_port()
    server = start(
        [sys.executable, "-m", "eventstitch", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        work / "server.log",
    )
    es = f"http://127.0.0.1:{port}"
    urls = {name: f"{es}/collect/page-view/{name}" for name in ("plain", "rules")}
    rows: list[dict[str, Any]] = []
    acknowledged = {"plain": 0, "rules": 0}
    in_flight = {"plain": 0, "rules": 0}
    try:
        wait_until_up(es + "/health", server)
        api(es, "POST", "/api/sources", {"id": "plain", "name": "No rules"})
        api(
            es,
            "POST",
            "/api/sources",
            {"id": "rules", "name": "Two rules", "identification": RULES},
        )
        for name, url in urls.items():  # warm up, unrecorded
            warm = run_wrk(url, 16, 2, [server.pid], script)
            acknowledged[name] += warm["requests"] - warm["non_2xx"]
            in_flight[name] += 16
        for repetition in range(args.repeat):
            for connections in levels:
                pair: dict[str, Any] = {"repetition": repetition + 1, "connections": connections}
                for name, url in urls.items():
                    measured = run_wrk(url, connections, args.duration, [server.pid], script)
                    acknowledged[name] += measured["requests"] - measured["non_2xx"]
                    in_flight[name] += connections
                    pair[name] = measured
                pair["ratio"] = pair["rules"]["rps"] / pair["plain"]["rps"]
                rows.append(pair)
                print(
                    f"  run {repetition + 1}, {connections} connections: no rules"
                    f" {pair['plain']['rps']:.0f}/s, two rules {pair['rules']['rps']:.0f}/s"
                    f" ({pair['ratio']:.0%}); other processes"
                    f" {max(pair['plain']['other_cores'], pair['rules']['other_cores']):.2f} cores",
                    flush=True,
                )
        stored = {
            name: api(es, "GET", f"/api/insights/counts?source_id={name}")["total"] for name in urls
        }
        conversion = api(es, "GET", "/api/insights/conversion?source_id=rules")
        profiles = api(es, "GET", "/api/profiles?identifier=email:a@a.com")["profiles"]
        rss = peak_rss_mb(server.pid)
    finally:
        stop(server)
    consistent = all(
        acknowledged[name] <= stored[name] <= acknowledged[name] + in_flight[name] for name in urls
    )
    summary = []
    for connections in levels:
        pairs = [r for r in rows if r["connections"] == connections]
        summary.append(
            {
                "connections": connections,
                "plain_rps": statistics.median(p["plain"]["rps"] for p in pairs),
                "rules_rps": statistics.median(p["rules"]["rps"] for p in pairs),
                "rules_p99_ms": statistics.median(p["rules"]["p99_ms"] for p in pairs),
                "plain_p99_ms": statistics.median(p["plain"]["p99_ms"] for p in pairs),
                "ratio": statistics.median(p["ratio"] for p in pairs),
                "ratio_range": [min(p["ratio"] for p in pairs), max(p["ratio"] for p in pairs)],
                "other_cores_max": max(
                    max(p["plain"]["other_cores"], p["rules"]["other_cores"]) for p in pairs
                ),
            }
        )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "database": args.database_url or "sqlite (temp folder, synchronous=FULL)",
        "duration_s": args.duration,
        "summary": summary,
        "runs": rows,
        "acknowledged": acknowledged,
        "stored": stored,
        "new_people": args.new_people,
        "conversion": conversion,
        "profiles_with_the_email": len(profiles),
        "peak_rss_mb": rss,
    }
    print(f"\nMedians of {args.repeat} pair(s) of {args.duration} s runs:\n")
    print("| connections | no rules req/s | p99 ms | two rules req/s | p99 ms | share (min-max) |")
    print("|---|---|---|---|---|---|")
    for s in summary:
        low, high = s["ratio_range"]
        print(
            f"| {s['connections']} | {s['plain_rps']:.0f} | {s['plain_p99_ms']:.2f}"
            f" | {s['rules_rps']:.0f} | {s['rules_p99_ms']:.2f}"
            f" | {s['ratio']:.0%} ({low:.0%}-{high:.0%}) |"
        )
    note_noise(summary)
    print(
        f"\nacknowledged {acknowledged}, stored {stored}:"
        f" {'every acknowledged event stored' if consistent else 'MISMATCH'};"
        f" profiles holding the email: {len(profiles)}; peak RSS {rss:.0f} MB"
    )
    write_result("rules-ratio", result)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if consistent and (args.new_people or len(profiles) == 1) else 1


if __name__ == "__main__":
    sys.exit(main())
