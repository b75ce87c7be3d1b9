"""Do the segments keep up with a sustained rate? `serve`, its refresher on, loaded with
realistic webhook events at a steady rate for a bounded time.

    .venv/bin/python bench/refresher_sustained.py [--rate 10000] [--seconds 300] [--batch 100]
        [--refresh-seconds 10] [--probe-seconds 10]

Starts one server on a free 127.0.0.1 port (SQLite, a temporary data folder, the refresher as
`serve` runs it: a child process at nice 19 every `--refresh-seconds`) and stops it by its PID
at the end. A webhook source splits a JSON array into events (`shaping.split = "$"`), and the
load posts arrays of `--batch` events to `/collect/<type>/hooks`, one type an array, paced so
that `--rate` events a second are sent (the payloads of bench/insights_query.py: Stripe-,
GitHub-, Shopify- and Alertmanager-shaped). Every `--probe-seconds` it asks `GET /api/insights`
a question the segments answer and records how many events it read past them (`tail.events`:
what the refresher has not written yet) and how long it took. At the end it checks that every
acknowledged event is stored. Prints the timeline and a summary; writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx2 as httpx

from collect_throughput import (
    TICKS,
    TOKEN,
    api,
    busy_ticks,
    free_port,
    machine,
    peak_rss_mb,
    process_stats,
    server_env,
    start,
    stop,
    wait_until_up,
    write_result,
)
from insights_query import fill_span

ROUND = re.compile(r"from ([\d.]+) to ([\d.]+), checkpoint (\d+)")
"""A refresher round's INFO line: when it held the folder, and the checkpoint after it."""
PROBE = {"metric": "count", "by": "properties.status"}
"""A question the segments answer (a count by a top-level property, no `until`)."""


def cpu_seconds(server: int) -> dict[str, float]:
    """CPU seconds so far: the server process, its children alive (the SQLite writer process, a
    refresher round under way) and those it has reaped (refresher rounds done), this process
    (the load), and the whole machine busy."""
    used = {"server": 0.0, "children": 0.0, "load": sum(os.times()[:2])}
    for pid, fields in process_stats():
        own = (int(fields[11]) + int(fields[12])) / TICKS
        if pid == server:
            used["server"] += own
            used["children"] += (int(fields[13]) + int(fields[14])) / TICKS  # reaped
        elif int(fields[1]) == server:
            used["children"] += own
    used["machine"] = busy_ticks() / TICKS
    return used


def bodies(batch: int) -> list[tuple[str, bytes]]:
    """Request bodies of `batch` events of one type each, from 20 000 generated payloads."""
    with tempfile.TemporaryDirectory(prefix="eventstitch-payloads-") as name:
        db = Path(name) / "payloads.db"
        asyncio.run(fill_span(db, 20_000, 0, 3_600_000))
        conn = sqlite3.connect(db)
        by_type: dict[str, list[bytes]] = defaultdict(list)
        for kind, properties in conn.execute("SELECT type, properties FROM events"):
            by_type[kind].append(properties.encode() if isinstance(properties, str) else properties)
        conn.close()
    found = []
    for kind, payloads in sorted(by_type.items()):
        for at in range(0, len(payloads) - batch + 1, batch):
            found.append((kind, b"[" + b",".join(payloads[at : at + batch]) + b"]"))
    return found


async def load(
    base: str,
    rate: int,
    seconds: float,
    planned: list[tuple[str, bytes]],
    batch: int,
    probes: list[dict[str, Any]],
    probe_seconds: float,
) -> dict[str, Any]:
    """Send `rate` events a second for `seconds`; probe the tail every `probe_seconds`."""
    interval = batch / rate
    started = time.monotonic()
    tickets = itertools.count()
    sent = acknowledged = refused = 0
    late = 0.0
    last_answer = started
    headers = {"Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def sender() -> None:
            nonlocal sent, acknowledged, refused, late, last_answer
            while True:
                ticket = next(tickets)
                due = started + ticket * interval
                if due - started >= seconds:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    late = max(late, -wait)
                kind, body = planned[ticket % len(planned)]
                sent += batch
                answer = await client.post(f"/collect/{kind}/hooks", content=body, headers=headers)
                if answer.status_code == 200:
                    acknowledged += batch
                else:
                    refused += batch
                last_answer = time.monotonic()

        async def prober() -> None:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            while time.monotonic() - started < seconds:
                await asyncio.sleep(probe_seconds)
                asked = time.monotonic()
                answer = await client.get("/api/insights", params=PROBE, headers=auth)
                body = answer.json()
                probes.append(
                    {
                        "at_s": round(asked - started, 1),
                        "acknowledged": acknowledged,
                        "engine": body.get("engine"),
                        "tail_events": (body.get("tail") or {}).get("events"),
                        "tail_read": (body.get("tail") or {}).get("read"),
                        "took_ms": body.get("took_ms"),
                        "total": body.get("total"),
                    }
                )
                print(
                    f"  {probes[-1]['at_s']:6.1f} s: {acknowledged} acknowledged, engine "
                    f"{probes[-1]['engine']}, tail {probes[-1]['tail_events']} events "
                    f"({probes[-1]['tail_read']} read now), {probes[-1]['took_ms']} ms",
                    flush=True,
                )

        await asyncio.gather(*(sender() for _ in range(16)), prober())
    elapsed = last_answer - started  # the sending, not the last probe
    return {
        "sent": sent,
        "acknowledged": acknowledged,
        "refused": refused,
        "seconds": elapsed,
        "rate": acknowledged / elapsed if elapsed > 0 else 0.0,
        "most_late_s": late,
    }


def round_spans(rounds: list[str]) -> list[tuple[float, float, float]]:
    """Each round's start, end and checkpoint (Unix seconds), from its INFO line."""
    found = []
    for line in rounds:
        match = ROUND.search(line)
        if match:
            begin, end, checkpoint = match.groups()
            found.append((float(begin), float(end), int(checkpoint) / 1000))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--refresh-seconds", type=int, default=10)
    parser.add_argument("--probe-seconds", type=float, default=10)
    args = parser.parse_args()
    if not (0 < args.rate <= 50_000 and 0 < args.seconds <= 1800 and 0 < args.batch <= 500):
        parser.error("--rate 1..50000, --seconds 1..1800, --batch 1..500")
    if not 1 <= args.probe_seconds <= 60:
        parser.error("--probe-seconds 1..60")
    planned = bodies(args.batch)
    work = Path(tempfile.mkdtemp(prefix="eventstitch-sustained-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **server_env(work, ""),
        "EVENTSTITCH_PORT": str(port),
        "EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": str(args.refresh_seconds),
        "EVENTSTITCH_LOG_LEVEL": "info",  # each refresher round says what it wrote, and when
    }
    server = start([sys.executable, "-m", "eventstitch", "serve"], env, work / "server.log")
    probes: list[dict[str, Any]] = []
    try:
        wait_until_up(base + "/health", server)
        api(
            base,
            "POST",
            "/api/sources",
            {"id": "hooks", "name": "hooks", "shaping": {"split": "$"}},
        )
        print(f"loading {base} at {args.rate} events/s for {args.seconds:.0f} s", flush=True)
        before = cpu_seconds(server.pid)
        result = asyncio.run(
            load(base, args.rate, args.seconds, planned, args.batch, probes, args.probe_seconds)
        )
        after = cpu_seconds(server.pid)
        result["cores"] = {
            name: round((after[name] - before[name]) / result["seconds"], 2) for name in before
        }
        time.sleep(1)
        stored = api(base, "GET", "/api/insights/counts?source_id=hooks")["total"]
        peak = peak_rss_mb(server.pid)
    finally:
        stop(server)
        log = (work / "server.log").read_text(errors="replace").splitlines()
        shutil.rmtree(work, ignore_errors=True)
    problems = [line for line in log if "WARNING" in line or "ERROR" in line]
    print(f"server log: {len(problems)} warnings or errors", *problems[:20], sep="\n")
    rounds = [line for line in log if "insight segments: wrote" in line]
    print(f"refresher rounds that wrote: {len(rounds)}", *rounds, sep="\n")
    assert stored == result["acknowledged"], (
        f"acknowledged {result['acknowledged']}, stored {stored}"
    )
    tails = [p["tail_events"] for p in probes if p["tail_events"] is not None]
    print(
        f"\n{result['acknowledged']} events acknowledged in {result['seconds']:.0f} s "
        f"({result['rate']:.0f}/s; {result['refused']} refused; most late send "
        f"{result['most_late_s']:.2f} s), all stored; server peak RSS {peak:.0f} MiB"
    )
    cores = result["cores"]
    print(
        f"cores used while loading ({os.cpu_count()} here): server {cores['server']}, its "
        f"children (writer, refresher rounds) {cores['children']}, the load {cores['load']}, "
        f"the whole machine {cores['machine']}"
    )
    if tails:
        half = len(tails) // 2
        print(
            f"events past the segments: at most {max(tails)}, in the first half at most "
            f"{max(tails[:half] or [0])}, in the second half at most {max(tails[half:])}"
        )
        took = sorted(p["took_ms"] for p in probes if p["tail_events"] is not None)
        print(
            f"answers from the segments: median {statistics.median(took):.0f} ms, "
            f"max {took[-1]:.0f} ms ({len(took)} asked)"
        )
    spans = round_spans(rounds)
    if spans:
        lasted = [end - begin for begin, end, _ in spans]
        behind = [end - checkpoint for _, end, checkpoint in spans]
        print(
            f"rounds that wrote took {min(lasted):.1f}-{max(lasted):.1f} s (median "
            f"{statistics.median(lasted):.1f}); the checkpoint as each ended was "
            f"{min(behind):.1f}-{max(behind):.1f} s behind the clock"
        )
    write_result(
        "refresher_sustained",
        {
            "machine": machine(),
            "args": vars(args),
            "result": result,
            "probes": probes,
            "server_peak_rss_mb": peak,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
