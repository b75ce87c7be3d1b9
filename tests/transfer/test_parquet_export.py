"""`eventstitch export --format parquet`: the events the API lists, readable by DuckDB."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from tests.conftest import API_TOKEN, all_events, create_source, make_config
from tests.pg import backend_params, fresh_database_url

BODIES: list[Any] = [
    {"email": "a@a.com", "n": 1.5, "nested": {"deep": [1, {"x": None}]}},
    {"unicode": "żółw 🐢", "big": 2**53},
    [1, 2, 3],
]


@pytest.fixture(params=backend_params(("sqlite", "postgres")))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for the CLI and the app: one store per backend."""
    env = {"EVENTSTITCH_DATA_DIR": str(tmp_path / "data")}
    if request.param == "postgres":
        with fresh_database_url() as url:
            yield {**env, "EVENTSTITCH_DATABASE_URL": url}
        return
    yield env


def _client(env: dict[str, str]) -> TestClient:
    config = make_config(
        Path(env["EVENTSTITCH_DATA_DIR"]), database_url=env.get("EVENTSTITCH_DATABASE_URL", "")
    )
    http = TestClient(EventstitchApp(config))
    http.headers["Authorization"] = f"Bearer {API_TOKEN}"
    return http


def _rows(path: Path, where: str = "") -> list[dict[str, Any]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cursor = con.execute(
        "SELECT id, type, source_id, strftime(received_at, '%Y-%m-%dT%H:%M:%S.%g') AS at, "
        "profile_less, profile_id, session_id, properties, context "
        f"FROM read_parquet(?) {where} ORDER BY id",
        [str(path)],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _as_api(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event["id"],
        "type": event["type"],
        "source_id": event["source_id"],
        "at": event["received_at"].removesuffix("Z")[:23],
        "profile_less": event["profile_less"],
        "profile_id": event["profile_id"],
        "session_id": event["session_id"],
        "properties": event["properties"],
        "context": event["context"],
    }


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "properties": orjson.loads(row["properties"]),
        "context": orjson.loads(row["context"]),
    }


def test_parquet_export_holds_the_events_the_api_lists(
    store: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _client(store) as http:
        create_source(http, id="hooks")
        create_source(http, id="other")
        for n in range(60):
            source = "hooks" if n % 3 else "other"
            answer = http.post(f"/collect/type-{n % 4}/{source}", json=BODIES[n % 3])
            assert answer.status_code == 200
        everything = all_events(http)
        narrowed = all_events(http, type="type-1", source_id="hooks")
    for key, value in store.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    whole = tmp_path / "all.parquet"
    result = runner.invoke(cli, ["export", "--format", "parquet", "-o", str(whole)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(whole.stat().st_mode) == 0o600  # properties may hold personal data
    rows = [_decoded(r) for r in _rows(whole)]
    assert rows == sorted((_as_api(e) for e in everything), key=lambda e: e["id"])
    big = next(r for r in rows if isinstance(r["properties"], dict) and "big" in r["properties"])
    assert big["properties"]["big"] == 2**53  # JSON text kept exact, not through a double

    some = tmp_path / "some.parquet"
    result = runner.invoke(
        cli,
        ["export", "--format", "parquet", "--type", "type-1", "--source", "hooks", "-o", str(some)],
    )
    assert result.exit_code == 0, result.output
    assert len(narrowed) == 10
    assert [_decoded(r) for r in _rows(some)] == sorted(
        (_as_api(e) for e in narrowed), key=lambda e: e["id"]
    )
    # JSON text is queryable with DuckDB's own JSON functions.
    found = _rows(some, "WHERE json_extract_string(properties, '$.unicode') = 'żółw 🐢'")
    assert len(found) == 5


def test_parquet_export_of_an_empty_range_is_a_readable_empty_file(
    store: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in store.items():
        monkeypatch.setenv(key, value)
    target = tmp_path / "none.parquet"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--format",
            "parquet",
            "--since",
            "2001-01-01",
            "--until",
            "2001-01-02",
            "-o",
            str(target),
        ],
    )
    assert result.exit_code == 0, result.output
    assert _rows(target) == []


def test_parquet_export_refuses_stdout_and_json_export_refuses_filters(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--format", "parquet"])
    assert result.exit_code == 2
    assert "needs a file" in result.output
    result = runner.invoke(cli, ["export", "--type", "x", "-o", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "parquet only" in result.output
