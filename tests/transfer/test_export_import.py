"""Moving a store: export to JSON Lines and import elsewhere, nothing lost, verified."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from tests.conftest import API_TOKEN, all_events, create_source, make_config
from tests.pg import fresh_database_url


def fill(data_dir: Path) -> list[dict[str, object]]:
    """A store with two sources and a mix of events; returns the events as the API shows them."""
    with TestClient(EventstitchApp(make_config(data_dir))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(http, id="hooks", tags=["shop"])
        create_source(http, id="off", enabled=False, description="kept disabled")
        bodies = [
            {"email": "a@a.com", "n": 1.5, "nested": {"deep": [1, {"x": None}]}},
            {"unicode": "żółw 🐢", "big": 2**53},
            [1, 2, 3],
        ]
        for n in range(1205):  # more than one import batch
            answer = http.post(f"/collect/type-{n % 4}/hooks", json=bodies[n % 3])
            assert answer.status_code == 200
        return all_events(http)


def everything(data_dir: Path) -> tuple[list[object], list[object], object]:
    with TestClient(EventstitchApp(make_config(data_dir))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        # The built-in system source is made by each store's migration, at its own time.
        sources = [s for s in http.get("/api/sources").json()["sources"] if s["id"] != "system"]
        events = all_events(http)
        counts = http.get("/api/insights/counts", params={"by": "hour,type"}).json()
    return sources, events, counts


def test_export_then_import_reproduces_sources_events_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tmp_path / "original"
    fill(original)
    dump = tmp_path / "dump.jsonl"
    runner = CliRunner()
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(original))
    exported = runner.invoke(cli, ["export", "-o", str(dump)])
    assert exported.exit_code == 0, exported.output
    summary = orjson.loads(dump.read_bytes().splitlines()[-1])
    assert summary["events"] == 1205 + 2  # and the two system events of the sources created
    assert summary["sources"] == 3  # with the built-in system source

    copy = tmp_path / "copy"
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(copy))
    imported = runner.invoke(cli, ["import", str(dump), "--json"])
    assert imported.exit_code == 0, imported.output
    report = orjson.loads(imported.stdout)
    assert report["verified"] is True
    assert report["events_new"] == 1207
    assert report["sources_new"] == 2  # the system source exists in every store
    assert report["target_checksum"] == summary["checksum"]
    assert everything(copy) == everything(original)

    again = runner.invoke(cli, ["import", str(dump), "--json"])
    assert again.exit_code == 0, again.output
    assert orjson.loads(again.stdout)["events_existing"] == 1207  # safe to run twice
    assert everything(copy) == everything(original)


def test_import_of_a_truncated_file_fails_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tmp_path / "original"
    fill(original)
    dump = tmp_path / "dump.jsonl"
    runner = CliRunner()
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(original))
    assert runner.invoke(cli, ["export", "-o", str(dump)]).exit_code == 0
    lines = dump.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:500]))

    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(tmp_path / "copy"))
    result = runner.invoke(cli, ["import", str(cut)])
    assert result.exit_code == 1
    assert "cut short" in result.output


def test_import_refuses_a_file_that_is_not_an_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"hello": "world"}\n')
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(tmp_path / "copy"))
    result = CliRunner().invoke(cli, ["import", str(bogus)])
    assert result.exit_code == 1
    assert "not an eventstitch-export" in result.output


def identity_store(data_dir: Path) -> dict[str, object]:
    """A store whose events made profiles, one merged into another."""
    rules = [
        {"path": "email", "kind": "email", "create_profile": True},
        {"path": "phone", "kind": "phone", "create_profile": True},
    ]
    with TestClient(EventstitchApp(make_config(data_dir))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(http, id="hooks", identification=rules)
        http.post("/collect/a/hooks", json={"email": "a@a.com"})
        http.post("/collect/b/hooks", json={"phone": "+48601234567"})
        http.post("/collect/c/hooks", json={"email": "a@a.com", "phone": "+48601234567"})
        http.post("/collect/d/hooks", json={"email": "b@b.com"})
        return snapshot(http)


def snapshot(http: TestClient) -> dict[str, object]:
    profiles = {}
    for identifier in ("email:a@a.com", "email:b@b.com", "phone:+48601234567"):
        found = http.get("/api/profiles", params={"identifier": identifier}).json()["profiles"]
        profiles[identifier] = [(p["id"], p["traits"], p["identifiers"]) for p in found]
    events = [
        (e["id"], e["profile_id"], e["converted_by"]) for e in all_events(http, source_id="hooks")
    ]
    return {"profiles": profiles, "events": events}


@pytest.mark.postgres
def test_profiles_travel_with_their_events_sqlite_to_postgres_and_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tmp_path / "original"
    before = identity_store(original)
    runner = CliRunner()
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(original))
    assert runner.invoke(cli, ["export", "-o", str(first)]).exit_code == 0
    with fresh_database_url() as url:
        moved = runner.invoke(cli, ["import", str(first), "--database-url", url, "--json"])
        assert moved.exit_code == 0, moved.output
        report = orjson.loads(moved.stdout)
        assert report["profiles_new"] == 3  # two live, one merged into the older
        with TestClient(EventstitchApp(make_config(tmp_path / "pg", database_url=url))) as http:
            http.headers["Authorization"] = f"Bearer {API_TOKEN}"
            assert snapshot(http) == before
        back = runner.invoke(cli, ["export", "-o", str(second), "--database-url", url])
        assert back.exit_code == 0, back.output
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(tmp_path / "again"))
    restored = runner.invoke(cli, ["import", str(second), "--json"])
    assert restored.exit_code == 0, restored.output
    with TestClient(EventstitchApp(make_config(tmp_path / "again"))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        assert snapshot(http) == before
    assert orjson.loads(first.read_bytes().splitlines()[-1]) == orjson.loads(
        second.read_bytes().splitlines()[-1]
    )


def test_a_signed_limited_source_is_restored_working_with_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export is a backup: it holds the signing secrets, so the restored source verifies
    the same deliveries; identification, traits and the delivery id path come along too."""
    secret = "It's a Secret to Everybody"
    digest = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    signed = {"X-Hub-Signature-256": f"sha256={digest}", "content-type": "application/json"}
    original, copy = tmp_path / "original", tmp_path / "copy"
    with TestClient(EventstitchApp(make_config(original))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        before = create_source(
            http,
            id="gh",
            signature={"preset": "github", "secrets": [secret]},
            rate_limit={"per_second": 5, "burst": 10},
            identification=[{"path": "email", "kind": "email"}],
            traits={"name": "customer.name"},
            delivery_id_path="meta.id",
        )
    dump = tmp_path / "dump.jsonl"
    runner = CliRunner()
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(original))
    assert runner.invoke(cli, ["export", "-o", str(dump)]).exit_code == 0
    assert secret in dump.read_text()
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(copy))
    imported = runner.invoke(cli, ["import", str(dump)])
    assert imported.exit_code == 0, imported.output
    with TestClient(EventstitchApp(make_config(copy))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        assert http.get("/api/sources/gh").json() == before
        assert (
            http.post("/collect/x/gh", content=b"Hello, World!", headers=signed).status_code == 400
        )
        assert http.post("/collect/x/gh", json={}).status_code == 401


@pytest.mark.parametrize(
    ("tampered", "named"),
    [
        ({"secrets": "abc"}, "secrets"),  # a string where a list belongs: one-letter tokens
        ({"preset": "hmac", "header": "x-sig", "algorithm": "md5"}, "algorithm"),
        ({"preset": "standard_webhooks", "secrets": ["whsec_not base64!!"]}, "whsec_"),
    ],
)
def test_import_refuses_a_signature_rule_the_api_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tampered: dict[str, object], named: str
) -> None:
    """A hand-edited export cannot bring in a rule that would weaken or break verification;
    the import stops at that line, naming it, and the source is not created."""
    original = tmp_path / "original"
    with TestClient(EventstitchApp(make_config(original))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(http, id="gh", signature={"preset": "github", "secrets": ["s" * 20]})
    dump = tmp_path / "dump.jsonl"
    runner = CliRunner()
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(original))
    assert runner.invoke(cli, ["export", "-o", str(dump)]).exit_code == 0
    lines = dump.read_text().splitlines()
    for number, line in enumerate(lines):
        record = json.loads(line)
        source = record.get("source") or {}
        if record["kind"] == "source" and source["id"] == "gh":
            source["signature"] = {**source["signature"], **tampered}
            lines[number] = json.dumps(record)
            break
    else:
        raise AssertionError("the export holds no signed source")
    dump.write_text("\n".join(lines) + "\n")
    copy = tmp_path / "copy"
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(copy))
    result = runner.invoke(cli, ["import", str(dump)])
    assert result.exit_code == 1
    assert f"line {number + 1}: bad source" in result.output
    assert named in result.output
    with TestClient(EventstitchApp(make_config(copy))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        assert http.get("/api/sources/gh").status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        lambda event: {**event, "received_at": "2026-01-01T00:00:00.000Z"},
        lambda event: {**event, "id": event["id"].upper()},
        lambda event: {**event, "id": "evt-1"},
    ],
    ids=["received_at moved", "id not canonical", "id not a UUIDv7"],
)
def test_import_refuses_an_event_whose_id_was_not_minted_at_its_received_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: object
) -> None:
    """Time ranges are id ranges (an event's time is read back from its UUIDv7): an event whose
    id says another moment would be left out of every range and every insight segment."""
    original = tmp_path / "original"
    with TestClient(EventstitchApp(make_config(original))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(http, id="hooks")
        for n in range(3):
            assert http.post("/collect/order/hooks", json={"n": n}).status_code == 200
    dump = tmp_path / "dump.jsonl"
    runner = CliRunner()
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(original))
    assert runner.invoke(cli, ["export", "-o", str(dump)]).exit_code == 0
    lines = [orjson.loads(line) for line in dump.read_bytes().splitlines()]
    at = next(i for i, line in enumerate(lines) if line["kind"] == "event")
    lines[at] = {**lines[at], "event": change(lines[at]["event"])}  # type: ignore[operator]
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))

    copy = tmp_path / "copy"
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(copy))
    result = runner.invoke(cli, ["import", str(edited)])
    assert result.exit_code == 1
    assert f"line {at + 1}: bad event (id must be a UUIDv7 minted at received_at)" in result.output
    with TestClient(EventstitchApp(make_config(copy))) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        assert [e for e in all_events(http) if e["source_id"] == "hooks"] == []
