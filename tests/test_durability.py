"""An acknowledged event survives a crash: SIGKILL the real server mid-load, restart it on the
same database, and find every event that got a 2xx exactly once; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx2 as httpx
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import all_events, create_source, start_server
from tests.pg import backend_params, fresh_database_url

CLIENTS = 8
PER_CLIENT = 400  # upper bound; the kill usually lands well before


pytestmark = pytest.mark.e2e  # every test here starts server processes


@pytest.fixture(params=backend_params(BACKENDS))
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The server's database: the embedded default, or a fresh PostgreSQL schema."""
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        yield {"EVENTSTITCH_DATABASE_URL": url} if url else {}


def test_every_acknowledged_event_survives_sigkill(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    server = start_server(data, tmp_path / "first.log", **database_env)
    with server.client() as http:
        create_source(http, id="hooks")
    acknowledged: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            for n in range(PER_CLIENT):
                try:
                    answer = http.post("/collect/load/hooks", json={"client": number, "n": n})
                except httpx.HTTPError:
                    return  # the server is gone: this request was never acknowledged
                if answer.status_code == 200:
                    with lock:
                        acknowledged.append(answer.json()["id"])
                        if len(acknowledged) >= 300:
                            enough.set()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=60), "the load never got going"
    os.kill(server.process.pid, signal.SIGKILL)  # mid-load, no chance to flush anything
    server.process.wait(timeout=10)
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)

    restarted = start_server(data, tmp_path / "second.log", **database_env)
    try:
        with restarted.client() as http:
            stored = [e["id"] for e in all_events(http)]
    finally:
        restarted.stop()

    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events were lost"
    # Unacknowledged requests in flight at the kill may or may not have been committed.
    assert len(stored) <= CLIENTS * PER_CLIENT
    print(f"durability: {len(acknowledged)} acknowledged, {len(stored)} found after the restart")
