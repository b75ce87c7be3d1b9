"""Write keys of tracker sources: made on creation, shown, rotated with a grace period."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source


def test_a_tracker_source_gets_a_write_key_and_a_webhook_source_none(client: TestClient) -> None:
    tracker = create_source(client, id="app", kind="tracker")
    webhook = create_source(client, id="hooks")
    assert tracker["write_key"].startswith("wk_")
    assert len(tracker["write_key"]) == 35
    assert webhook["write_key"] is None
    assert client.get("/api/sources/app").json()["write_key"] == tracker["write_key"]


def test_rotation_gives_a_new_key_and_says_until_when_the_old_one_works(
    client: TestClient,
) -> None:
    old = create_source(client, id="app", kind="tracker")["write_key"]
    rotated = client.post("/api/sources/app/rotate-key", json={"grace_seconds": 60}).json()
    assert rotated["write_key"] not in (None, old)
    assert rotated["previous_write_key_valid_until"] is not None
    without_grace = client.post("/api/sources/app/rotate-key", json={"grace_seconds": 0}).json()
    assert without_grace["previous_write_key_valid_until"] is None


def test_rotation_is_refused_for_a_webhook_source_and_a_grace_past_the_bound(
    client: TestClient,
) -> None:
    create_source(client, id="hooks")
    create_source(client, id="app", kind="tracker")
    body = assert_error_shape(client.post("/api/sources/hooks/rotate-key"), 422)
    assert body["errors"][0]["field"] == "kind"
    at_limit = client.post("/api/sources/app/rotate-key", json={"grace_seconds": 2_592_000})
    assert at_limit.status_code == 200, at_limit.text
    past = client.post("/api/sources/app/rotate-key", json={"grace_seconds": 2_592_001})
    assert assert_error_shape(past, 422)["errors"][0]["field"] == "grace_seconds"
