"""The command line calls the same services as HTTP, with tables for people and --json."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from tests.conftest import API_TOKEN, make_config


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(folder))
    monkeypatch.delenv("EVENTSTITCH_API_TOKEN", raising=False)
    return folder


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sources_lifecycle_with_tables_and_json(data_dir: Path) -> None:
    added = json.loads(
        invoke("sources", "add", "--name", "Shop", "--id", "shop", "--tag", "eu", "--json")
    )
    assert added["id"] == "shop"
    assert added["tags"] == ["eu"]
    assert "shop" in invoke("sources", "list")
    listed = json.loads(invoke("sources", "list", "--json"))["sources"]
    assert {s["id"] for s in listed} >= {"shop", "system"}
    assert json.loads(invoke("sources", "disable", "shop", "--json"))["enabled"] is False
    assert json.loads(invoke("sources", "enable", "shop", "--json"))["enabled"] is True
    assert json.loads(invoke("sources", "show", "shop", "--json"))["name"] == "Shop"
    invoke("sources", "remove", "shop")
    missing = CliRunner().invoke(cli, ["sources", "show", "shop"])
    assert missing.exit_code == 1
    assert "source 'shop' not found" in missing.output


def test_events_and_insights_show_what_http_stored(data_dir: Path) -> None:
    with TestClient(EventstitchApp(make_config(data_dir))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        http.post("/api/sources", json={"id": "shop", "name": "Shop"})
        ids = [
            http.post("/collect/order/shop", json={"n": n, "user": "John"}).json()["id"]
            for n in range(3)
        ]
    listed = json.loads(invoke("events", "list", "--source", "shop", "--json"))["events"]
    assert [e["id"] for e in listed] == ids[::-1]
    where = json.loads(invoke("events", "list", "--where", "n=1", "--json"))["events"]
    assert [e["id"] for e in where] == [ids[1]]
    assert json.loads(invoke("events", "show", ids[0]))["properties"] == {"n": 0, "user": "John"}
    counts = json.loads(invoke("insights", "--by", "type", "--source", "shop", "--json"))
    assert counts["rows"] == [{"type": "order", "count": 3}]
    assert "order" in invoke("insights", "--by", "type")


def test_db_migrate_is_up_to_date_the_second_time(data_dir: Path) -> None:
    invoke("db", "migrate")
    assert "schema is up to date" in invoke("db", "migrate")


def test_config_docs_is_the_configuration_page(data_dir: Path) -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert invoke("config", "docs") == page.read_text(encoding="utf-8")


def test_tail_prints_events_appended_after_it_starts(data_dir: Path) -> None:
    invoke("sources", "add", "--name", "Shop", "--id", "shop")
    outcome: dict[str, object] = {}

    def tail() -> None:
        result = CliRunner().invoke(
            cli,
            [
                "events",
                "tail",
                "--source",
                "shop",
                "--backlog",
                "0",
                "--interval",
                "0.1",
                "--max-events",
                "3",
                "--json",
            ],
        )
        outcome["result"] = result

    thread = threading.Thread(target=tail, daemon=True)
    thread.start()
    time.sleep(0.5)  # let tail take its starting point; the events below are all newer
    with TestClient(EventstitchApp(make_config(data_dir))) as http:
        for n in range(3):
            assert http.post("/collect/order/shop", json={"n": n}).status_code == 200
    thread.join(timeout=30)
    assert not thread.is_alive(), "tail did not stop after --max-events"
    result = outcome["result"]
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # type: ignore[attr-defined]
    assert [line["properties"]["n"] for line in lines] == [0, 1, 2]
