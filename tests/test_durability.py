"""An acknowledged event survives a crash: SIGKILL the real server, one of its workers, or its
SQLite writer process mid-load, and find every event that got a 2xx exactly once; on SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx2 as httpx
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, create_source, start_server
from tests.pg import backend_params, fresh_database_url

CLIENTS = 8
PER_CLIENT = 400  # upper bound; the kill usually lands well before


pytestmark = pytest.mark.e2e  # every test here starts server processes


@pytest.fixture(params=backend_params(BACKENDS))
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The server's database: the embedded default, or a fresh PostgreSQL schema."""
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        yield {"EVENTSTITCH_DATABASE_URL": url} if url else {}


class Load:
    """CLIENTS threads posting events, each on its own keep-alive connection, keeping the ids
    of the acknowledged ones; a request that fails (a 503, a dropped connection) is not."""

    def __init__(self, url: str) -> None:
        self.acknowledged: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._url = url
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]
        for thread in self._threads:
            thread.start()

    def _client(self, number: int) -> None:
        failures = 0
        with httpx.Client(base_url=self._url, timeout=5) as http:
            for n in range(PER_CLIENT):
                try:
                    answer = http.post("/collect/load/hooks", json={"client": number, "n": n})
                except httpx.HTTPError:
                    # The worker of this connection is gone: never acknowledged. The next
                    # request opens a new connection, as a sender retrying would; when
                    # nothing answers any more, the server is gone.
                    failures += 1
                    if failures > 20:
                        return
                    time.sleep(0.02)
                    continue
                with self._lock:
                    if answer.status_code == 200:
                        self.acknowledged.append(answer.json()["id"])
                    else:
                        self.refused += 1

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, "the load never got going"
            time.sleep(0.01)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in self._threads)


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found[int(entry.name)] = command
    return found


def writer_pid(server: LiveServer) -> int:
    pids = [pid for pid, cmd in children(server.process.pid).items() if "writer_process" in cmd]
    assert len(pids) == 1, children(server.process.pid)
    return pids[0]


def stored_ids(http: httpx.Client) -> list[str]:
    """The ids of the events the load stored; each of its requests stored at most once."""
    events = all_events(http, source_id="hooks")
    requests = [(e["properties"].get("client"), e["properties"].get("n")) for e in events]
    assert len(requests) == len(set(requests)), "one request was stored twice"
    return [e["id"] for e in events]


def assert_stored_once(stored: list[str], acknowledged: list[str]) -> None:
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events were lost"
    # Unacknowledged requests in flight at the kill may or may not have been committed.
    assert len(stored) <= CLIENTS * PER_CLIENT + 1  # and the one sent after


def test_every_acknowledged_event_survives_sigkill(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    server = start_server(data, tmp_path / "first.log", **database_env)
    with server.client() as http:
        create_source(http, id="hooks")
    load = Load(server.url)
    load.wait_for(300)
    os.kill(server.process.pid, signal.SIGKILL)  # mid-load, no chance to flush anything
    server.process.wait(timeout=10)
    load.join()

    restarted = start_server(data, tmp_path / "second.log", **database_env)
    try:
        with restarted.client() as http:
            stored = stored_ids(http)
    finally:
        restarted.stop()

    assert_stored_once(stored, load.acknowledged)
    print(f"durability: {len(load.acknowledged)} acknowledged, {len(stored)} found after restart")


def test_every_acknowledged_event_survives_sigkill_of_one_worker(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    server = start_server(
        tmp_path / "data", tmp_path / "server.log", EVENTSTITCH_WORKERS="2", **database_env
    )
    try:
        with server.client() as http:
            create_source(http, id="hooks")
        workers = [
            pid
            for pid, command in children(server.process.pid).items()
            if "multiprocessing" in command and "resource_tracker" not in command
        ]
        assert len(workers) == 2, children(server.process.pid)
        load = Load(server.url)
        load.wait_for(300)
        os.kill(workers[0], signal.SIGKILL)
        load.join()
        # The other worker (and the one started in its place) kept serving.
        assert len(load.acknowledged) > 300
        with server.client() as http:
            after = http.post("/collect/load/hooks", json={"after": True})
            assert after.status_code == 200
            stored = stored_ids(http)
    finally:
        server.stop()
    assert_stored_once(stored, [*load.acknowledged, after.json()["id"]])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_acknowledged_event_survives_sigkill_of_the_sqlite_writer_process(
    tmp_path: Path, workers: str
) -> None:
    server = start_server(tmp_path / "data", tmp_path / "server.log", EVENTSTITCH_WORKERS=workers)
    try:
        with server.client() as http:
            create_source(http, id="hooks")
        killed = writer_pid(server)
        load = Load(server.url)
        load.wait_for(300)
        os.kill(killed, signal.SIGKILL)
        load.join()
        # `serve` started a new writer, and the workers found it.
        assert writer_pid(server) != killed
        with server.client() as http:
            after = http.post("/collect/load/hooks", json={"after": True})
            assert after.status_code == 200
            stored = stored_ids(http)
    finally:
        server.stop()
    assert_stored_once(stored, [*load.acknowledged, after.json()["id"]])
    print(f"writer killed: {len(load.acknowledged)} acknowledged, {load.refused} refused")
