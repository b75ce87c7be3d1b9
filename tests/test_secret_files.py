"""Secrets on disk and on screen: the data folder is owner-only and every file holding a secret
(the SQLite database with its -wal and -shm, the API token, an export) is 0600 whatever the
umask; `serve` never prints a PostgreSQL password."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.auth import ensure_api_token, token_path
from eventstitch.cli.main import cli
from eventstitch.config import Config
from eventstitch.storage import BACKENDS
from tests.conftest import API_TOKEN, create_source, point_cli_at, start_server, uses_sqlite_file
from tests.pg import backend_params, fresh_database_url

UMASKS = [0o022, 0o000]
PASSWORD = "p@ss:w/rd #?%41 'x\\"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def database_files(config: Config) -> list[Path]:
    database = config.data_dir / "eventstitch.db"
    return [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]


@pytest.mark.parametrize("mask", UMASKS, ids=["umask-022", "umask-000"])
def test_every_file_holding_secrets_is_owner_only_whatever_the_umask(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mask: int
) -> None:
    dump = tmp_path / "export.jsonl"
    with umask(mask):
        ensure_api_token(dataclasses.replace(config, api_token=""))
        with TestClient(EventstitchApp(config)) as client:
            client.headers["Authorization"] = f"Bearer {API_TOKEN}"
            rule = {"preset": "github", "secrets": ["It's a Secret to Everybody"]}
            create_source(client, id="gh", signature=rule)
            assert client.post("/collect/o/open", json={}).status_code == 404
            if uses_sqlite_file(config):  # checked while open: the -wal and -shm exist now
                for path in database_files(config):
                    assert mode(path) == 0o600, path
        point_cli_at(monkeypatch, config)
        exported = CliRunner().invoke(cli, ["export", "-o", str(dump)])
    assert exported.exit_code == 0, exported.output
    assert "It's a Secret to Everybody" in dump.read_text()  # the export does hold it
    assert mode(dump) == 0o600
    assert mode(config.data_dir) == 0o700
    assert mode(token_path(config)) == 0o600


def test_an_export_over_a_readable_file_leaves_it_owner_only(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "export.jsonl"
    dump.write_text("old")
    dump.chmod(0o644)
    point_cli_at(monkeypatch, config)
    assert CliRunner().invoke(cli, ["export", "-o", str(dump)]).exit_code == 0
    assert mode(dump) == 0o600
    assert "old" not in dump.read_text()


def with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    netloc = f"{user}:{quote(PASSWORD, safe='')}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.e2e
@pytest.mark.parametrize("backend", backend_params(BACKENDS))
def test_serve_under_umask_0_keeps_its_files_private_and_prints_no_password(
    tmp_path: Path, backend: str
) -> None:
    data = tmp_path / "data"
    env = {"EVENTSTITCH_API_TOKEN": ""}  # serve creates the token file
    with database_url_for(backend) as url:
        if url:  # trust authentication: the password is carried but not needed
            env["EVENTSTITCH_DATABASE_URL"] = with_password(url)
        with umask(0o000):  # the child inherits it
            server = start_server(data, tmp_path / "server.log", **env)
        try:
            with server.client() as client:
                assert client.get("/health").status_code == 200
            printed = server.log_path.read_text()
            assert "Eventstitch on http://127.0.0.1" in printed
            if url:
                assert "password=***" in printed
            for shown in (PASSWORD, quote(PASSWORD, safe=""), "p@ss:w"):
                assert shown not in printed
            assert mode(data) == 0o700
            assert mode(data / "api-token") == 0o600
            if not url:
                database = data / "eventstitch.db"
                for path in (database, database.with_name("eventstitch.db-wal")):
                    assert mode(path) == 0o600, path
        finally:
            server.stop()


@contextmanager
def database_url_for(backend: str) -> Iterator[str]:
    """The database URL of `backend` for a server process ('' for the embedded file)."""
    if backend == "sqlite":
        yield ""
        return
    with fresh_database_url() as url:
        yield url
