"""The CLI on a temporary data folder, and the HTTP app on the same folder for ingesting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from tests.conftest import API_TOKEN, make_config


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EVENTSTITCH_DATA_DIR for every command of the test, and no other setting from outside."""
    folder = tmp_path / "data"
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(folder))
    for name in ("EVENTSTITCH_DATABASE_URL", "EVENTSTITCH_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def http(data_dir: Path) -> Iterator[TestClient]:
    """The HTTP app on the CLI's data folder, authorised for /api."""
    with TestClient(EventstitchApp(make_config(data_dir)), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield client


def invoke(*args: str) -> Result:
    """Run `eventstitch <args>` in this process."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ok(*args: str) -> str:
    """stdout of a command that must succeed."""
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def ok_json(*args: str) -> Any:
    """A `--json` command's output, parsed."""
    return json.loads(ok(*args, "--json"))


def fails(*args: str, code: int = 1) -> str:
    """stderr of a command that must fail with `code`."""
    result = invoke(*args)
    assert result.exit_code == code, (args, result.output)
    assert result.stdout == "", result.stdout
    return result.stderr
