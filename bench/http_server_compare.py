"""The real `/collect` (one worker, SQLite, its writer thread) served by uvicorn and by Granian's
ASGI interface, each beside the no-op on the same server, measured pair by pair in one run.

    .venv/bin/pip install granian   # not a dependency: measured, not adopted
    .venv/bin/python bench/http_server_compare.py [--duration 5] [--connections 16,64]
                                                  [--repeat 3]

Both servers run the application as `eventstitch serve` builds it (`create_app`), without
`serve`'s protocol (head budgets, coalesced writes), which only uvicorn can run: this compares
the servers themselves. Prints a Markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
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
    run_wrk,
    server_env,
    start,
    stop,
    wait_until_up,
    write_result,
)


def uvicorn(target: str, port: int, factory: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        *(["--factory"] if factory else ["--app-dir", str(HERE)]),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
    ]


def granian(target: str, port: int, factory: bool) -> list[str]:
    return [
        str(Path(sys.executable).with_name("granian")),
        "--interface",
        "asgi",
        *(["--factory"] if factory else ["--working-dir", str(HERE)]),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--workers",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        target,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    load_arguments(parser, duration=5, connections="16,64")
    args = parser.parse_args()
    levels = checked_levels(parser, args)
    if shutil.which("wrk") is None or not Path(sys.executable).with_name("granian").exists():
        print("needs wrk and granian (pip install granian)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="eventstitch-servers-"))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    try:
        for name, command in (("uvicorn", uvicorn), ("granian", granian)):
            for app, target, factory in (
                ("noop", "noop_app:app", False),
                ("collect", "eventstitch.app:create_app", True),
            ):
                port = free_port()
                label = f"{name} {app}"
                env = server_env(work / label.replace(" ", "-"), args.database_url)
                processes[label] = start(command(target, port, factory), env, work / f"{label}.log")
                base = f"http://127.0.0.1:{port}"
                wait_until_up(base + ("/health" if app == "collect" else "/"), processes[label])
                if app == "collect":
                    api(base, "POST", "/api/sources", {"id": "bench", "name": "Benchmark"})
                urls[label] = f"{base}/collect/page-view/bench"
        for label, url in urls.items():
            run_wrk(url, 16, 2, [processes[label].pid])  # warm up, unrecorded
        for repetition in range(args.repeat):
            for connections in levels:
                for label, url in urls.items():
                    measured = run_wrk(url, connections, args.duration, [processes[label].pid])
                    measured["label"] = label
                    measured["repetition"] = repetition + 1
                    rows.append(measured)
                    print(
                        f"  run {repetition + 1}, {connections} connections, {label}:"
                        f" {measured['rps']:.0f}/s p99 {measured['p99_ms']:.1f} ms,"
                        f" other processes {measured['other_cores']:.2f} cores",
                        flush=True,
                    )
    finally:
        for process in processes.values():
            stop(process)
    print(f"\nMedians of {args.repeat} runs of {args.duration} s:\n")
    print("| server | connections | req/s (min-max) | p99 ms | server cores | CPU per request |")
    print("|---|---|---|---|---|---|")
    for label in urls:
        for connections in levels:
            runs = [r for r in rows if r["label"] == label and r["connections"] == connections]
            rps = [r["rps"] for r in runs]
            cpu = statistics.median(1e6 * r["server_cores"] / r["rps"] for r in runs)
            print(
                f"| {label} | {connections} | {statistics.median(rps):.0f}"
                f" ({min(rps):.0f}-{max(rps):.0f})"
                f" | {statistics.median(r['p99_ms'] for r in runs):.1f}"
                f" | {statistics.median(r['server_cores'] for r in runs):.2f} | {cpu:.0f} µs |"
            )
    write_result(
        "servers",
        {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": machine(),
            "load_average": Path("/proc/loadavg").read_text().split()[:3],
            "runs": rows,
        },
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
