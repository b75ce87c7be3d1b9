"""Shared fixtures: a real embedded store in a temporary folder, an in-process client, and a
real server process on a free loopback port for end-to-end tests. No mocks of storage."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config, load_config
from eventstitch.storage import BACKENDS
from tests.pg import backend_params, fresh_database_url

API_TOKEN = "test-token-0123456789"


def make_config(data_dir: Path, **overrides: Any) -> Config:
    """Settings for a test: defaults, a temporary data folder, a known token."""
    return load_config({}, data_dir=data_dir, api_token=API_TOKEN, **overrides)


@pytest.fixture(params=backend_params(BACKENDS))
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Config]:
    """Settings for an in-process app, once per backend: the API tests that touch storage run
    on SQLite and on PostgreSQL (a fresh schema, dropped afterwards; see tests/pg.py)."""
    if request.param == "sqlite":
        yield make_config(tmp_path / "data")
        return
    assert request.param == "postgres", f"no test settings for backend {request.param!r}"
    with fresh_database_url() as url:
        yield make_config(tmp_path / "data", database_url=url)


def point_cli_at(monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    """Make `eventstitch` commands in this test use the same store as `config`."""
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)


def uses_sqlite_file(config: Config) -> bool:
    """Whether the store is the embedded file (tests that open the file itself need it)."""
    return not config.database_url


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    """An in-process client with storage started, authorised for /api."""
    app = EventstitchApp(config)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield test_client


def create_source(client: TestClient | httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "Test source", **fields}
    response = client.post("/api/sources", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def stored_events(client: TestClient | httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/events", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def all_events(client: TestClient | httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every event matching the filters, following the cursor page by page (bounded)."""
    events: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        page = client.get(
            "/api/events",
            params={"limit": 1000, **params, **({"cursor": cursor} if cursor else {})},
        ).json()
        events += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events
    raise AssertionError("more pages than a test should ever make")


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    """The one error shape, with the expected status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"ok", "error", "errors", "status"}, body
    assert body["ok"] is False
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["errors"], list)
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A real `eventstitch serve` process on a loopback port."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(data_dir: Path, log_path: Path, **env: str) -> LiveServer:
    """Start `python -m eventstitch serve` on 127.0.0.1 and wait until /health answers."""
    port = free_port()
    environ = {
        **os.environ,
        "EVENTSTITCH_DATA_DIR": str(data_dir),
        "EVENTSTITCH_API_TOKEN": API_TOKEN,
        "EVENTSTITCH_HOST": "127.0.0.1",
        "EVENTSTITCH_PORT": str(port),
        "EVENTSTITCH_LOG_LEVEL": "warning",
        **env,
    }
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "eventstitch", "serve"], env=environ, stdout=log, stderr=log
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, data_dir, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not start in time: {log_path.read_text()}")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()
