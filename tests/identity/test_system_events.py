"""Eventstitch's own happenings as events of the read-only `system` source, and the setting
that turns them off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import API_TOKEN, assert_error_shape, create_source, make_config
from tests.identity.support import (
    EMAIL_RULE,
    backfill_in_app,
    collect,
    system_events,
    track,
)

RULES = [EMAIL_RULE, {"path": "other_email", "kind": "email"}]


def _happen(client: TestClient) -> dict[str, str]:
    """Create and disable a source, create profiles, merge them, backfill, track."""
    create_source(client, id="hooks", identification=RULES)
    create_source(client, id="web", kind="tracker")
    older = collect(client, "hooks", {"email": "a@a.com"})
    newer = collect(client, "hooks", {"email": "b@b.com"})
    joining = collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})
    track(client, {"source": {"id": "web"}, "events": [{"type": "view"}]})
    backfill_in_app(client, "hooks")
    assert client.patch("/api/sources/web", json={"enabled": False}).status_code == 200
    assert client.patch("/api/sources/hooks", json={"description": "x"}).status_code == 200
    assert client.delete("/api/sources/web").status_code == 204
    return {"older": older["profile_id"], "newer": newer["profile_id"], "event": joining["id"]}


def test_source_profile_merge_and_backfill_happenings_are_system_events(
    client: TestClient,
) -> None:
    ids = _happen(client)

    happened = system_events(client)

    assert all(e["source_id"] == "system" for e in happened)
    assert all(e["profile_less"] is True and e["profile_id"] is None for e in happened)
    by_type: dict[str, list[dict[str, object]]] = {}
    for item in reversed(happened):  # oldest first
        by_type.setdefault(item["type"], []).append(item["properties"])
    assert by_type["source-created"] == [
        {"source_id": "hooks", "kind": "webhook"},
        {"source_id": "web", "kind": "tracker"},
    ]
    assert by_type["source-disabled"] == [{"source_id": "web", "fields": ["enabled"]}]
    assert by_type["source-changed"] == [{"source_id": "hooks", "fields": ["description"]}]
    assert by_type["source-removed"] == [{"source_id": "web"}]
    created = by_type["profile-created"]
    assert created[:2] == [
        {"profile_id": ids["older"], "identifiers": ["email:a@a.com"]},
        {"profile_id": ids["newer"], "identifiers": ["email:b@b.com"]},
    ]
    assert len(created) == 3  # and the tracked visitor's profile, with no identifier
    assert created[2]["identifiers"] == []
    assert by_type["profiles-merged"] == [
        {"survivor": ids["older"], "merged": ids["newer"], "event_id": ids["event"]}
    ]
    assert by_type["backfill-finished"] == [{"sources": 1, "events": 3, "linked": 3}]


def test_system_events_are_counted_by_insights_like_any_other(client: TestClient) -> None:
    _happen(client)

    answer = client.get("/api/insights/counts", params={"by": "type", "source_id": "system"})

    rows = {row["type"]: row["count"] for row in answer.json()["rows"]}
    assert rows["profile-created"] == 3
    assert rows["source-created"] == 2


@pytest.fixture
def quiet_client(tmp_path: Path) -> Iterator[TestClient]:
    config = make_config(tmp_path / "data", system_events=False)
    with TestClient(EventstitchApp(config), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield client


def test_system_events_off_records_none(quiet_client: TestClient) -> None:
    ids = _happen(quiet_client)

    assert system_events(quiet_client) == []
    # The happenings themselves still happened.
    merged = quiet_client.get(f"/api/profiles/{ids['newer']}").json()
    assert merged["merged_into"] == ids["older"]


def test_system_source_is_listed_as_read_only_kind(client: TestClient) -> None:
    answer = client.get("/api/sources/system")

    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "system"


@pytest.mark.parametrize(
    "change", [{"enabled": False}, {"name": "Mine"}, {"identification": [EMAIL_RULE]}]
)
def test_system_source_cannot_be_patched(client: TestClient, change: dict[str, object]) -> None:
    assert_error_shape(client.patch("/api/sources/system", json=change), 403)

    source = client.get("/api/sources/system").json()
    assert source["enabled"] is True
    assert source["identification"] == []
    assert system_events(client) == []


def test_system_source_cannot_be_deleted(client: TestClient) -> None:
    assert_error_shape(client.delete("/api/sources/system"), 403)

    assert client.get("/api/sources/system").status_code == 200


def test_system_source_cannot_be_recreated(client: TestClient) -> None:
    answer = client.post("/api/sources", json={"id": "system", "name": "Mine"})

    assert_error_shape(answer, 409)


def test_system_source_refuses_collect_and_track(client: TestClient) -> None:
    assert_error_shape(client.post("/collect/profile-created/system", json={"x": 1}), 403)
    assert_error_shape(client.get("/collect/profile-created/system?x=1"), 403)
    tracked = client.post("/track", json={"source": {"id": "system"}, "events": [{"type": "x"}]})
    assert_error_shape(tracked, 403)

    assert system_events(client) == []
