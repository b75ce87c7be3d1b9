"""Single-event /collect throughput and latency against the real server (durable commits),
beside a no-op endpoint on the same server stack, measured in the same run.

    .venv/bin/python bench/collect_throughput.py [--duration 8] [--connections 1,16,64]
                                                 [--repeat 3] [--workers 1,2]
    .venv/bin/python bench/collect_throughput.py --columnar-events 300000 [--refresh-in thread]

Needs wrk (`apt-get install wrk`). Starts its own servers on free 127.0.0.1 ports, in a
temporary data folder, and stops them (by PID) at the end. For each connection count and each
repetition it runs wrk against the no-op and then against `/collect`, so that every ratio
compares two runs made seconds apart; with `--workers 1,2` a one-worker and a two-worker
server run side by side, each measured right after the same no-op run. It also accounts for
the CPU: the server's (its workers and writer process included), wrk's, and what the rest of
the machine used meanwhile (a busy neighbour shows up there). At the end it checks through
the API that every acknowledged event is stored. Prints Markdown tables and writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"  # noqa: S105 - a throwaway token for a throwaway server
LUA = HERE / "post_event.lua"
TICKS = os.sysconf("SC_CLK_TCK")
NOISY = 0.25  # other processes using more than a quarter of a core: the run is flagged


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


# -- CPU accounting (Linux /proc) ------------------------------------------------------------
def busy_ticks() -> int:
    """CPU ticks the whole machine spent busy (all but idle and iowait), all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """Each process's id and the fields of its /proc/<pid>/stat after its name (state, parent,
    ...: utime and stime at 11 and 12, its reaped children's at 13 and 14)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        yield int(entry.name), fields


def process_ticks(pid: int) -> int:
    """User and system ticks of a process and its direct children (uvicorn's workers)."""
    return sum(
        int(fields[11]) + int(fields[12])
        for found, fields in process_stats()
        if found == pid or int(fields[1]) == pid
    )


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str, connections: int, duration: int, servers: list[int], script: Path = LUA
) -> dict[str, Any]:
    """One wrk run, with where the CPU went meanwhile (in cores: 1.0 is one core busy)."""
    threads = 1 if connections < 4 else 2
    busy, served, loaded = busy_ticks(), sum(map(process_ticks, servers)), children_cpu_seconds()
    started = time.monotonic()
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    elapsed = time.monotonic() - started
    server_cores = (sum(map(process_ticks, servers)) - served) / TICKS / elapsed
    wrk_cores = (children_cpu_seconds() - loaded) / elapsed
    other_cores = (busy_ticks() - busy) / TICKS / elapsed - server_cores - wrk_cores
    total = int(_find(r"(\d+) requests in", output))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "connections": connections,
        "wrk_threads": threads,
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "rps": float(_find(r"Requests/sec:\s+([\d.]+)", output)),
        "p50_ms": _ms(_find(r"50%\s+([\d.]+\w+)", output)),
        "p99_ms": _ms(_find(r"99%\s+([\d.]+\w+)", output)),
        "server_cores": round(server_cores, 2),
        "wrk_cores": round(wrk_cores, 2),
        "other_cores": round(max(other_cores, 0.0), 2),
    }


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"wrk output without {pattern!r}:\n{text}")
    return found.group(1)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(_find(r"VmHWM:\s+(\d+) kB", status)) / 1024


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


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    memory = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    try:
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    except OSError:
        wrk = ""
    return {
        "cores": os.cpu_count(),
        "cpu": model.group(1).strip() if model else "?",
        "memory_gib": round(int(memory.group(1)) / 1024**2, 1) if memory else None,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "wrk": wrk.split(" Copyright")[0].strip(),
    }


def summarise(rows: list[dict[str, Any]], levels: list[int]) -> list[dict[str, Any]]:
    """Per connection count: medians over the repetitions (ratios are per pair)."""
    summary = []
    for connections in levels:
        pairs = [r for r in rows if r["collect"]["connections"] == connections]
        collect = [p["collect"] for p in pairs]
        noop = [p["noop"] for p in pairs]
        summary.append(
            {
                "connections": connections,
                "runs": len(pairs),
                "collect_rps": statistics.median(r["rps"] for r in collect),
                "collect_rps_range": [
                    min(r["rps"] for r in collect),
                    max(r["rps"] for r in collect),
                ],
                "collect_p50_ms": statistics.median(r["p50_ms"] for r in collect),
                "collect_p99_ms": statistics.median(r["p99_ms"] for r in collect),
                "noop_rps": statistics.median(r["rps"] for r in noop),
                "noop_p99_ms": statistics.median(r["p99_ms"] for r in noop),
                "ratio": statistics.median(p["ratio"] for p in pairs),
                "ratio_range": [min(p["ratio"] for p in pairs), max(p["ratio"] for p in pairs)],
                "server_cores": statistics.median(r["server_cores"] for r in collect),
                "wrk_cores": statistics.median(r["wrk_cores"] for r in collect),
                "other_cores_max": max(r["other_cores"] for r in collect + noop),
            }
        )
    return summary


def load_arguments(parser: argparse.ArgumentParser, *, duration: int, connections: str) -> None:
    """The options every load benchmark here takes."""
    parser.add_argument("--duration", type=int, default=duration, help="seconds per wrk run")
    parser.add_argument("--connections", default=connections)
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs per level")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")


def checked_levels(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[int]:
    """The connection counts, once the run is known to be bounded."""
    levels = [int(c) for c in args.connections.split(",")]
    if not 1 <= args.duration <= 120 or not 1 <= args.repeat <= 20 or max(levels) > 1024:
        parser.error("keep it bounded: duration 1-120 s, repeat 1-20, at most 1024 connections")
    return levels


def server_env(work: Path, database_url: str) -> dict[str, str]:
    """The environment of a benchmarked server: its own data folder and a known token."""
    return {
        **os.environ,
        "EVENTSTITCH_DATA_DIR": str(work / "data"),
        "EVENTSTITCH_API_TOKEN": TOKEN,
        "EVENTSTITCH_LOG_LEVEL": "warning",
        "EVENTSTITCH_DATABASE_URL": database_url,
    }


def note_noise(summary: list[dict[str, Any]]) -> None:
    """Say at which levels the rest of the machine was busy while wrk ran."""
    noisy = [s["connections"] for s in summary if s["other_cores_max"] > NOISY]
    if noisy:
        print(
            f"\nnote: other processes used more than {NOISY} of a core during some runs at"
            f" {', '.join(map(str, noisy))} connections; those figures understate the servers"
        )


def write_result(name: str, result: dict[str, Any]) -> None:
    """Keep a run's figures as JSON in bench/results/."""
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


def process_tree(pid: int) -> list[int]:
    """`pid` and its direct children (uvicorn's workers, the SQLite writer process)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(entry.name))
    return pids


def tree_rss_mb(pid: int) -> dict[int, float]:
    """Peak RSS (VmHWM) of `pid` and of each of its direct children, in MB."""
    found = {}
    for member in process_tree(pid):
        try:
            found[member] = round(peak_rss_mb(member), 1)
        except (OSError, RuntimeError):
            continue
    return found


def serve_command(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "eventstitch",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    load_arguments(parser, duration=8, connections="1,16,64")
    parser.add_argument(
        "--workers",
        default="1",
        help="worker counts to measure, comma-separated (1,2: a one-worker and a two-worker"
        " server side by side, each run right after the other)",
    )
    parser.add_argument(
        "--rules",
        action="store_true",
        help="give the source two identification rules (email creating profiles, and phone),"
        " so that every event goes through identity resolution",
    )
    parser.add_argument(
        "--columnar-events",
        type=int,
        default=0,
        help="compare /collect with the columnar read side on and off instead (bench/"
        "columnar_side.py): pre-fill this many events over past hours, and let the server"
        " with the refresher on write their segments from scratch during each load",
    )
    parser.add_argument("--columnar-hours", type=int, default=48, help="hours they span")
    parser.add_argument(
        "--refresh-in",
        choices=["process", "thread"],
        default="process",
        help="EVENTSTITCH_COLUMNAR_REFRESH_IN of the server with the refresher on",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    levels = checked_levels(parser, args)
    if args.columnar_events:
        if not 1 <= args.columnar_events <= 5_000_000 or not 1 <= args.columnar_hours <= 24 * 60:
            parser.error("keep it bounded: 1-5 000 000 events over 1-1440 hours")
        import columnar_side  # only this mode needs eventstitch itself

        return columnar_side.compare(sys.modules[__name__], args, levels)
    counts = [int(w) for w in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="eventstitch-bench-"))
    noop_port = free_port()
    servers: dict[int, subprocess.Popen[bytes]] = {}
    urls: dict[int, str] = {}
    # The same uvicorn settings as `eventstitch serve` (src/eventstitch/cli/serve.py).
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
        server_env(work, args.database_url),
        work / "noop.log",
    )
    noop_url = f"http://127.0.0.1:{noop_port}/collect/page-view/bench"
    rows: dict[int, list[dict[str, Any]]] = {w: [] for w in counts}
    acknowledged = dict.fromkeys(counts, 0)
    in_flight = dict.fromkeys(counts, 0)
    stored: dict[int, int] = {}
    rss: dict[int, dict[int, float]] = {}
    try:
        wait_until_up(f"http://127.0.0.1:{noop_port}/", noop)
        for workers in counts:
            # Each server its own data folder; on one PostgreSQL database, its own source.
            port = free_port()
            env = server_env(work / f"w{workers}", args.database_url)
            servers[workers] = start(serve_command(port, workers), env, work / f"w{workers}.log")
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base + "/health", servers[workers])
            source: dict[str, Any] = {"id": f"bench{workers}", "name": "Benchmark"}
            if args.rules:
                source["identification"] = [
                    {"path": "email", "kind": "email", "create_profile": True},
                    {"path": "phone", "kind": "phone"},
                ]
            api(base, "POST", "/api/sources", source)
            urls[workers] = f"{base}/collect/page-view/bench{workers}"
        everything = [noop.pid, *(p.pid for p in servers.values())]
        warm = run_wrk(noop_url, 16, 2, everything)  # warm up, unrecorded
        for workers in counts:
            warm = run_wrk(urls[workers], 16, 2, everything)
            acknowledged[workers] += warm["requests"] - warm["non_2xx"]
            in_flight[workers] += 16
        for repetition in range(args.repeat):
            for connections in levels:
                everything = [noop.pid, *(p.pid for p in servers.values())]
                ceiling = run_wrk(noop_url, connections, args.duration, everything)
                for workers in counts:
                    measured = run_wrk(
                        urls[workers],
                        connections,
                        args.duration,
                        [servers[workers].pid, noop.pid],
                    )
                    acknowledged[workers] += measured["requests"] - measured["non_2xx"]
                    in_flight[workers] += connections
                    pair = {"repetition": repetition + 1, "noop": ceiling, "collect": measured}
                    pair["ratio"] = measured["rps"] / ceiling["rps"]
                    rows[workers].append(pair)
                    print(
                        f"  run {repetition + 1}, {connections} connections, {workers} worker(s):"
                        f" /collect {measured['rps']:.0f}/s p99 {measured['p99_ms']:.1f} ms,"
                        f" no-op {ceiling['rps']:.0f}/s ({pair['ratio']:.0%}); other processes"
                        f" {max(measured['other_cores'], ceiling['other_cores']):.2f} cores",
                        flush=True,
                    )
        for workers in counts:
            base = urls[workers].split("/collect/")[0]
            stored[workers] = api(base, "GET", f"/api/insights/counts?source_id=bench{workers}")[
                "total"
            ]
            rss[workers] = tree_rss_mb(servers[workers].pid)
        noop_rss = peak_rss_mb(noop.pid)
    finally:
        for process in servers.values():
            stop(process)
        stop(noop)
    # wrk does not count the requests still in flight when it stops; those may be stored too.
    consistent = {w: acknowledged[w] <= stored[w] <= acknowledged[w] + in_flight[w] for w in counts}
    summaries = {w: summarise(rows[w], levels) for w in counts}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
        "workers": counts,
        "rules": args.rules,
        "database": args.database_url or "sqlite (temp folder, synchronous=FULL)",
        "sqlite_writer": os.environ.get("EVENTSTITCH_SQLITE_WRITER", "PROCESS"),
        "duration_s": args.duration,
        "summary": {str(w): summaries[w] for w in counts},
        "runs": {str(w): rows[w] for w in counts},
        "acknowledged": {str(w): acknowledged[w] for w in counts},
        "stored": {str(w): stored[w] for w in counts},
        "peak_rss_mb": {str(w): rss[w] for w in counts},
        "noop_peak_rss_mb": noop_rss,
    }
    for workers in counts:
        print(
            f"\n{workers} worker(s): medians of {args.repeat} pair(s) of {args.duration} s runs:\n"
        )
        print_table(summaries[workers])
        note_noise(summaries[workers])
        print(
            f"\nacknowledged (2xx) {acknowledged[workers]}, stored {stored[workers]}, in flight"
            f" when wrk stopped at most {in_flight[workers]}: "
            + ("every acknowledged event stored" if consistent[workers] else "MISMATCH")
        )
        peaks = rss[workers]
        print(
            f"peak RSS (VmHWM) per process: {', '.join(f'{v:.0f}' for v in peaks.values())} MB"
            f" (the no-op: {noop_rss:.0f} MB)"
        )
    if len(counts) > 1:
        print("\nScaling (median of per-repetition ratios, each against the first count):\n")
        first = counts[0]
        for workers in counts[1:]:
            for connections in levels:
                ratios = [
                    b["collect"]["rps"] / a["collect"]["rps"]
                    for a, b in zip(rows[first], rows[workers], strict=True)
                    if a["collect"]["connections"] == connections
                ]
                print(
                    f"- {connections} connections: {workers} workers / {first}:"
                    f" {statistics.median(ratios):.2f}x"
                    f" ({min(ratios):.2f}-{max(ratios):.2f})"
                )
    write_result("collect", result)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(consistent.values()) else 1


def print_table(summary: list[dict[str, Any]]) -> None:
    print(
        "| connections | /collect req/s (min-max) | p50 ms | p99 ms | no-op req/s | no-op p99 ms"
        " | ratio (min-max) | server cores | wrk cores | other cores (max) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        low, high = s["collect_rps_range"]
        print(
            f"| {s['connections']} | {s['collect_rps']:.0f} ({low:.0f}-{high:.0f})"
            f" | {s['collect_p50_ms']:.2f} | {s['collect_p99_ms']:.2f} | {s['noop_rps']:.0f}"
            f" | {s['noop_p99_ms']:.2f} | {s['ratio']:.0%}"
            f" ({s['ratio_range'][0]:.0%}-{s['ratio_range'][1]:.0%})"
            f" | {s['server_cores']:.2f} | {s['wrk_cores']:.2f} | {s['other_cores_max']:.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
