"""Events per second through `/v1/batch` with 100-message batches, against `/collect` with one
event a request, on the same server in the same run (durable commits both ways).

    .venv/bin/python bench/sdk_batch_throughput.py [--seconds 6] [--clients 8] [--batch 100]

Starts its own server on a free 127.0.0.1 port (SQLite, a temporary data folder) and stops it
by PID. Each side runs `--clients` threads, each with its own keep-alive connection, for
`--seconds`, alternating /collect, /v1/batch, /collect, /v1/batch so that a drifting machine
affects both alike. Every message carries an `anonymousId` (a claim the writer resolves, as
SDK traffic does) and a unique `messageId` (a delivery key checked and recorded). At the end it
checks that every acknowledged event is stored. Prints a Markdown table, writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx

from collect_throughput import (
    api,
    free_port,
    machine,
    peak_rss_mb,
    server_env,
    start,
    stop,
    wait_until_up,
    write_result,
)


def run_side(
    base: str, *, seconds: float, clients: int, batch: int, key: str, source_id: str
) -> dict[str, Any]:
    """Drive one side for `seconds` with `clients` threads: events acknowledged, requests."""
    sdk = batch > 0
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    acknowledged = [0] * clients
    requests = [0] * clients
    failures: list[str] = []
    stop_at = time.monotonic() + seconds

    def work(slot: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.monotonic() < stop_at:
                if sdk:
                    body = {
                        "batch": [
                            {
                                "type": "track",
                                "event": "Product Viewed",
                                "anonymousId": f"anon-{slot}-{i % 10}",
                                "messageId": str(uuid.uuid4()),
                                "properties": {"sku": f"sku-{i}", "price": 12.5},
                            }
                            for i in range(batch)
                        ]
                    }
                    answer = client.post("/v1/batch", json=body, headers=auth)
                    count = batch
                else:
                    answer = client.post(
                        f"/collect/product-viewed/{source_id}",
                        json={"sku": "sku-1", "price": 12.5, "anonymous_id": f"anon-{slot}"},
                    )
                    count = 1
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                    return
                acknowledged[slot] += count
                requests[slot] += 1

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(f"refused during the run: {failures[0]}")
    events = sum(acknowledged)
    return {
        "route": "/v1/batch" if sdk else "/collect",
        "events": events,
        "requests": sum(requests),
        "seconds": round(elapsed, 2),
        "events_per_second": round(events / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    if not (0 < args.seconds <= 120 and 0 < args.clients <= 64 and 0 < args.batch <= 1000):
        parser.error("--seconds 1..120, --clients 1..64, --batch 1..1000")
    work = Path(tempfile.mkdtemp(prefix="eventstitch-sdk-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**server_env(work, ""), "EVENTSTITCH_PORT": str(port)}
    server = start([sys.executable, "-m", "eventstitch", "serve"], env, work / "server.log")
    try:
        wait_until_up(base + "/health", server)
        key = api(base, "POST", "/api/sources", {"id": "app", "name": "app", "kind": "tracker"})[
            "write_key"
        ]
        api(base, "POST", "/api/sources", {"id": "hooks", "name": "hooks"})
        runs = []
        for _ in range(2):
            for batch in (0, args.batch):
                runs.append(
                    run_side(
                        base,
                        seconds=args.seconds / 2,
                        clients=args.clients,
                        batch=batch,
                        key=key,
                        source_id="hooks",
                    )
                )
        peak = peak_rss_mb(server.pid)
        stored = {
            source: api(base, "GET", f"/api/insights/counts?source_id={source}")["total"]
            for source in ("app", "hooks")
        }
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    single = [r for r in runs if r["route"] == "/collect"]
    batched = [r for r in runs if r["route"] == "/v1/batch"]
    acknowledged = {
        "app": sum(r["events"] for r in batched),
        "hooks": sum(r["events"] for r in single),
    }
    assert stored == acknowledged, f"acknowledged {acknowledged}, stored {stored}"
    single_rate = statistics.median(r["events_per_second"] for r in single)
    batch_rate = statistics.median(r["events_per_second"] for r in batched)
    print(f"| route | events/s (median of 2) | requests | {args.clients} clients |")
    print("|---|---|---|---|")
    print(
        f"| `/collect`, 1 event a request | {single_rate:.0f} | "
        f"{sum(r['requests'] for r in single)} | |"
    )
    print(
        f"| `/v1/batch`, {args.batch} a batch | {batch_rate:.0f} | "
        f"{sum(r['requests'] for r in batched)} | |"
    )
    print(
        f"\nbatch / single: {batch_rate / single_rate:.1f}x; server peak RSS {peak:.0f} MiB;"
        f" every acknowledged event stored ({sum(stored.values())})"
    )
    write_result(
        "sdk_batch_throughput",
        {
            "machine": machine(),
            "args": vars(args),
            "runs": runs,
            "single_events_per_second": single_rate,
            "batch_events_per_second": batch_rate,
            "ratio": round(batch_rate / single_rate, 2),
            "peak_rss_mb": round(peak, 1),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
