"""Single-event /collect throughput and latency against the real server (durable commits),
beside a no-op endpoint on the same server stack, measured in the same run.

    .venv/bin/python bench/collect_throughput.py [--duration 8] [--connections 1,16,64]

Needs wrk (`apt-get install wrk`). Starts its own servers on free 127.0.0.1 ports, in a
temporary data folder, and stops them (by PID) at the end. Prints a Markdown table and writes
JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"  # noqa: S105 - a throwaway token for a throwaway server
LUA = HERE / "post_event.lua"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def api(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def run_wrk(url: str, connections: int, duration: int) -> dict[str, Any]:
    threads = 1 if connections < 4 else 2
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(LUA),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "connections": connections,
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(command, env=env, stdout=handle, stderr=handle)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    parser.add_argument(
        "--rules",
        action="store_true",
        help="give the source two identification rules (email creating profiles, and phone),"
        " so that every event goes through identity resolution",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    levels = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="eventstitch-bench-"))
    env = {
        **os.environ,
        "EVENTSTITCH_DATA_DIR": str(work / "data"),
        "EVENTSTITCH_API_TOKEN": TOKEN,
        "EVENTSTITCH_LOG_LEVEL": "warning",
        "EVENTSTITCH_DATABASE_URL": args.database_url,
    }
    es_port, noop_port = free_port(), free_port()
    server = start(
        [
            sys.executable,
            "-m",
            "eventstitch",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(es_port),
            "--workers",
            str(args.workers),
        ],
        env,
        work / "server.log",
    )
    noop = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "noop_app:app",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(noop_port),
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ],
        env,
        work / "noop.log",
    )
    rows = []
    try:
        es = f"http://127.0.0.1:{es_port}"
        wait_until_up(es + "/health", server)
        wait_until_up(f"http://127.0.0.1:{noop_port}/", noop)
        source: dict[str, Any] = {"id": "bench", "name": "Benchmark"}
        if args.rules:
            source["identification"] = [
                {"path": "email", "kind": "email", "create_profile": True},
                {"path": "phone", "kind": "phone"},
            ]
        api(es, "POST", "/api/sources", source)
        for connections in levels:
            ceiling = run_wrk(
                f"http://127.0.0.1:{noop_port}/collect/page-view/bench", connections, args.duration
            )
            measured = run_wrk(f"{es}/collect/page-view/bench", connections, args.duration)
            rows.append(
                {"noop": ceiling, "collect": measured, "ratio": measured["rps"] / ceiling["rps"]}
            )
        counts = api(es, "GET", "/api/insights/counts?source_id=bench")
        rss = peak_rss_mb(server.pid) if args.workers == 1 else None
    finally:
        stop(server)
        stop(noop)
    acknowledged = sum(r["collect"]["requests"] - r["collect"]["non_2xx"] for r in rows)
    # wrk does not count the requests still in flight when it stops; those may be stored too.
    in_flight = sum(levels)
    consistent = acknowledged <= counts["total"] <= acknowledged + in_flight
    result = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
        "workers": args.workers,
        "rules": args.rules,
        "database": args.database_url or "sqlite (temp folder, synchronous=FULL)",
        "duration_s": args.duration,
        "rows": rows,
        "acknowledged": acknowledged,
        "stored": counts["total"],
        "peak_rss_mb": rss,
    }
    print("| connections | /collect req/s | p50 ms | p99 ms | no-op req/s | no-op p99 ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        c, n = row["collect"], row["noop"]
        print(
            f"| {c['connections']} | {c['rps']:.0f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} "
            f"| {n['rps']:.0f} | {n['p99_ms']:.2f} | {row['ratio']:.0%} |"
        )
    print(
        f"\nacknowledged (2xx) {acknowledged}, stored {counts['total']}, in flight at the end"
        f" at most {in_flight}: {'every acknowledged event stored' if consistent else 'MISMATCH'}"
    )
    if rss is not None:
        print(f"peak RSS of the server: {rss:.0f} MB")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / f"collect-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
