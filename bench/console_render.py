"""Console pages over many stored events: fill a SQLite store as bench/insights_query.py does
(10 million events over 30 days by default), start `eventstitch serve` on it on a loopback
port, sign in like a browser, and time each console page.

    .venv/bin/python bench/console_render.py [--events 10000000] [--db bench/results/10m.db]

Each page is asked for several times after one warm-up request; the median and the maximum
are reported. The time is measured by the client around each request on 127.0.0.1, so it is
the server's render time plus the loopback round trip (well under a millisecond).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from insights_query import build  # the store is built as that benchmark builds it

HERE = Path(__file__).resolve().parent
TOKEN = secrets.token_urlsafe(32)
START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(db: Path, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`eventstitch serve` on the store, waited for until /health answers."""
    port = _free_port()
    env = {
        **os.environ,
        "EVENTSTITCH_DATA_DIR": str(data_dir),
        "EVENTSTITCH_DATABASE_URL": f"sqlite:///{db}",
        "EVENTSTITCH_API_TOKEN": TOKEN,
        "EVENTSTITCH_HOST": "127.0.0.1",
        "EVENTSTITCH_PORT": str(port),
        "EVENTSTITCH_LOG_LEVEL": "warning",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "eventstitch", "serve"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not start in time")


def _seed(url: str) -> dict[str, str]:
    """A source with an email rule, one identified event and one refusal, for their pages."""
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    api.post(
        "/api/sources",
        json={
            "id": "bench-shop",
            "name": "Bench shop",
            "identification": [{"path": "email", "kind": "email", "create_profile": True}],
        },
    )
    api.post("/collect/order.paid/bench-shop", json={"email": "ada@example.com", "total": 3})
    api.post("/collect/order.paid/no-such-source", json={"n": 1})
    deadline = time.monotonic() + 10
    event, refusal = None, None
    while time.monotonic() < deadline and not (event and refusal):
        found = api.get("/api/events", params={"source_id": "bench-shop", "limit": 1}).json()
        event = (found["events"] or [None])[0]
        refusal = (api.get("/api/rejections").json()["rejections"] or [None])[0]
        time.sleep(0.1)
    if not (event and refusal and event["profile_id"]):
        raise SystemExit("the seeded event or refusal did not appear")
    return {"event": event["id"], "profile": event["profile_id"], "refusal": refusal["id"]}


def _pages(ids: dict[str, str]) -> list[str]:
    return [
        "/",
        "/overview/live",
        "/sources",
        "/sources/bench-shop",
        "/events",
        "/events/tail",
        "/events/tail?property=properties.data.object.currency%3Deur",
        "/events/tail?type=charge.succeeded&source=stripe",
        f"/events/{ids['event']}",
        "/insights",
        "/insights?metric=count&by=day&range=30d",
        "/insights?metric=count&by=hour&range=7d",
        "/insights?metric=count&by=day&by=type&range=30d",
        "/insights?metric=count&by=hour&by=type&range=7d",
        "/insights?metric=count&by=type&range=all",
        "/profiles?identifier=email%3Aada%40example.com",
        f"/profiles/{ids['profile']}",
        "/refusals",
        f"/refusals/{ids['refusal']}",
    ]


def _time_pages(url: str, pages: list[str], repeats: int) -> list[tuple[str, float, float]]:
    browser = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    signed = browser.post("/signin", data={"token": TOKEN})
    if signed.status_code != 303:
        raise SystemExit(f"sign-in answered {signed.status_code}")
    figures = []
    for page in pages:
        answer = browser.get(page)  # warm-up: caches and the first query plan
        if answer.status_code != 200:
            raise SystemExit(f"{page} answered {answer.status_code}")
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            browser.get(page).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        figures.append((page, statistics.median(times), max(times)))
        print(f"| `{page}` | {figures[-1][1]:.1f} | {figures[-1][2]:.1f} |", flush=True)
    return figures


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    name = model.group(1) if model else cpu
    return f"{name}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, default=HERE / "results" / "insights.db")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    asyncio.run(build(args.db, args.events))
    print(f"store ready in {time.perf_counter() - started:.0f} s; {_machine()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        process, url = _serve(args.db, Path(scratch), Path(scratch) / "server.log")
        try:
            ids = _seed(url)
            print("| page | median ms | max ms |")
            print("|---|---|---|")
            _time_pages(url, _pages(ids), args.repeats)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
