"""`collect_throughput.py --columnar-events N`: /collect with the columnar read side on against
off, side by side, in one run.

The store is pre-filled once with N events spread over past hours (`eventstitch import`). Then,
per repetition and connection count, one server runs with the refresher off
(EVENTSTITCH_COLUMNAR_REFRESH_SECONDS=0) and one with it on (1 s), one after the other on the
same store, in alternating order; before each run the segments folder is deleted, so the
server that has the refresher on writes every segment from scratch while wrk loads it. Each
server is warmed up by 2 s of load first (unrecorded); the measured load starts once the
refresher's first segment write has begun (a temporary file appears),
and the result says whether the rebuild was still running when the load ended (it should be:
otherwise the run measured an idle refresher for part of the time).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from eventstitch.ids import now_ms
from eventstitch.query.schemas import event_json
from eventstitch.storage.records import EventRecord
from eventstitch.transfer.service import EventDigest

HOUR_MS = 3_600_000
TYPES = ["charge.succeeded", "charge.refunded", "push", "alert.firing", "order.created"]


def _uuid7(ms: int, n: int) -> str:
    text = f"{ms:012x}7000{0x8000 | (n >> 48):04x}{n & 0xFFFFFFFFFFFF:012x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def prefill(work: Path, env: dict[str, str], events: int, hours: int) -> float:
    """Source `bench` and `events` events over the `hours` hours before this one, imported
    into the store; the seconds the import took."""
    cli = [sys.executable, "-m", "eventstitch"]
    subprocess.run(
        [*cli, "sources", "create", "--id", "bench", "--name", "Benchmark"],
        env=env,
        check=True,
        capture_output=True,
    )
    rng = random.Random(13)
    start = now_ms() // HOUR_MS * HOUR_MS
    digest = EventDigest()
    dump = work / "prefill.jsonl"
    with dump.open("wb") as out:
        out.write(orjson.dumps({"kind": "header", "format": "eventstitch-export", "version": 1}))
        out.write(b"\n")
        for n in range(events):
            at = start - 1 - rng.randrange(hours * HOUR_MS)
            rendered = event_json(
                EventRecord(
                    id=_uuid7(at, n),
                    type=rng.choice(TYPES),
                    source_id="bench",
                    received_ms=at,
                    profile_less=True,
                    profile_id=None,
                    session_id=None,
                    properties={
                        "url": "https://example.com/pricing",
                        "amount": rng.randrange(100, 100_000),
                        "plan": {"name": rng.choice(["free", "pro", "team"]), "seats": n % 50},
                    },
                    context={},
                )
            )
            digest.add(rendered)
            out.write(orjson.dumps({"kind": "event", "event": rendered}) + b"\n")
        summary = {"kind": "summary", "sources": 0, "profiles": 0}
        out.write(orjson.dumps({**summary, "events": digest.count, "checksum": digest.hexdigest}))
        out.write(b"\n")
    began = time.monotonic()
    done = subprocess.run([*cli, "import", str(dump)], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: the store also holds system events
        raise RuntimeError(f"import failed: {done.stderr}")
    dump.unlink()
    return time.monotonic() - began


def _temporary(where: Path) -> bool:
    return where.exists() and any(
        p.name.endswith((".partial", ".staging.jsonl")) for p in where.glob(".*")
    )


def _sealed(where: Path) -> bool:
    """Whether the rebuild has caught up (its checkpoint at the last sealed hour)."""
    try:
        reached = int((where / "checkpoint").read_text())
    except (FileNotFoundError, ValueError):
        return False
    return reached >= (now_ms() - 60_000) // HOUR_MS * HOUR_MS


def one_run(
    bench: Any, work: Path, env: dict[str, str], refresher: bool, connections: int, args: Any
) -> dict[str, Any]:
    """Start a server with the refresher on or off, load /collect, stop it."""
    where = work / "data" / "insight-segments"
    shutil.rmtree(where, ignore_errors=True)
    port = bench.free_port()
    server_env = {
        **env,
        "EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "1" if refresher else "0",
        "EVENTSTITCH_COLUMNAR_REFRESH_IN": args.refresh_in,
    }
    command = bench.serve_command(port, int(str(args.workers).split(",")[0]))
    server = bench.start(command, server_env, work / f"server-{port}.log")
    try:
        bench.wait_until_up(f"http://127.0.0.1:{port}/health", server)
        url = f"http://127.0.0.1:{port}/collect/page-view/bench"
        bench.run_wrk(url, connections, 2, [server.pid])  # warm-up, unrecorded, both sides
        if refresher:
            deadline = time.monotonic() + 60
            while not _temporary(where):
                if time.monotonic() > deadline:
                    log = (work / f"server-{port}.log").read_text()[-3000:]
                    raise RuntimeError(f"the refresher did not start writing in 60 s:\n{log}")
                time.sleep(0.01)
        measured = bench.run_wrk(url, connections, args.duration, [server.pid])
        measured["refresher"] = refresher
        if refresher:
            measured["segments_written"] = len(list(where.glob("hour-*.parquet")))
            measured["rebuild_busy_at_end"] = not _sealed(where)
        return measured
    finally:
        bench.stop(server)


def compare(bench: Any, args: Any, levels: list[int]) -> int:
    """The on/off comparison; prints a Markdown table and writes JSON to bench/results/."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="eventstitch-bench-columnar-"))
    env = bench.server_env(work, args.database_url)
    os.makedirs(work / "data", mode=0o700, exist_ok=True)
    print(
        f"pre-filling {args.columnar_events} events over {args.columnar_hours} hours...", flush=True
    )
    took = prefill(work, env, args.columnar_events, args.columnar_hours)
    print(f"  imported in {took:.0f} s", flush=True)
    pairs = []
    try:
        for repetition in range(args.repeat):
            for connections in levels:
                order = [False, True] if repetition % 2 == 0 else [True, False]
                runs = {on: one_run(bench, work, env, on, connections, args) for on in order}
                pair = {
                    "repetition": repetition + 1,
                    "off": runs[False],
                    "on": runs[True],
                    "ratio": runs[True]["rps"] / runs[False]["rps"],
                }
                pairs.append(pair)
                print(
                    f"  run {repetition + 1}, {connections} connections: off"
                    f" {runs[False]['rps']:.0f}/s, on {runs[True]['rps']:.0f}/s"
                    f" ({pair['ratio']:.0%}); segments written during the load"
                    f" {runs[True]['segments_written']}, rebuild still busy at the end:"
                    f" {runs[True]['rebuild_busy_at_end']}; other processes"
                    f" {max(runs[False]['other_cores'], runs[True]['other_cores']):.2f} cores",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nMedians of {args.repeat} pair(s) of {args.duration} s runs, refresher in a"
        f" {args.refresh_in}, {args.columnar_events} events over {args.columnar_hours} h:\n"
    )
    print(
        "| connections | off req/s (min-max) | on req/s (min-max) | on/off (min-max)"
        " | on p99 ms | off p99 ms | server cores on | other cores (max) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for connections in levels:
        chosen = [p for p in pairs if p["off"]["connections"] == connections]
        off = [p["off"]["rps"] for p in chosen]
        on = [p["on"]["rps"] for p in chosen]
        ratios = [p["ratio"] for p in chosen]
        row = {
            "connections": connections,
            "off_rps": statistics.median(off),
            "on_rps": statistics.median(on),
            "ratio": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "on_p99_ms": statistics.median(p["on"]["p99_ms"] for p in chosen),
            "off_p99_ms": statistics.median(p["off"]["p99_ms"] for p in chosen),
            "on_server_cores": statistics.median(p["on"]["server_cores"] for p in chosen),
            "other_cores_max": max(
                max(p["on"]["other_cores"], p["off"]["other_cores"]) for p in chosen
            ),
        }
        summary.append(row)
        print(
            f"| {connections} | {row['off_rps']:.0f} ({min(off):.0f}-{max(off):.0f})"
            f" | {row['on_rps']:.0f} ({min(on):.0f}-{max(on):.0f}) | {row['ratio']:.0%}"
            f" ({min(ratios):.0%}-{max(ratios):.0%}) | {row['on_p99_ms']:.2f}"
            f" | {row['off_p99_ms']:.2f} | {row['on_server_cores']:.2f}"
            f" | {row['other_cores_max']:.2f} |"
        )
    busy = all(p["on"]["rebuild_busy_at_end"] for p in pairs)
    print(f"\nthe rebuild was still writing when every load ended: {busy}")
    bench.write_result(
        f"collect-columnar-{args.refresh_in}",
        {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": bench.machine(),
            "workers": args.workers,
            "refresh_in": args.refresh_in,
            "prefill_events": args.columnar_events,
            "prefill_hours": args.columnar_hours,
            "database": args.database_url or "sqlite (temp folder, synchronous=FULL)",
            "duration_s": args.duration,
            "summary": summary,
            "pairs": pairs,
            "rebuild_busy_throughout": busy,
        },
    )
    return 0
