"""One real server per backend for a test module: `eventstitch serve` on a loopback port, on
SQLite or on a fresh PostgreSQL schema (dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pytest

from tests.conftest import LiveServer, start_server
from tests.pg import fresh_database_url


@contextmanager
def server_on(
    backend: str, tmp_path_factory: pytest.TempPathFactory, **env: str
) -> Iterator[LiveServer]:
    """A started server on `backend` (`sqlite` or `postgres`), stopped on leaving."""
    folder = tmp_path_factory.mktemp(backend)
    with fresh_database_url() if backend == "postgres" else nullcontext("") as url:
        database = {"EVENTSTITCH_DATABASE_URL": url} if url else {}
        server = start_server(folder / "data", folder / "server.log", **database, **env)
        try:
            yield server
        finally:
            server.stop()


def peak_rss_kib(server: LiveServer) -> int:
    """The server process's peak resident memory so far (VmHWM), in KiB."""
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")
