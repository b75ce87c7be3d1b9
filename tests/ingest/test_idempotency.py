"""A retried delivery is stored once: by delivery-id header or by a payload path."""

from __future__ import annotations

import sqlite3
import threading

import httpx2 as httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from eventstitch.config import Config
from tests.conftest import (
    LiveServer,
    all_events,
    assert_error_shape,
    create_source,
    uses_sqlite_file,
)


def age_delivery_keys(config: Config, by_ms: int) -> None:
    """Make every remembered delivery id older, as if that much time had passed."""
    if uses_sqlite_file(config):
        with sqlite3.connect(config.data_dir / "eventstitch.db") as conn:
            conn.execute("UPDATE delivery_keys SET seen_ms = seen_ms - ?", (by_ms,))
        return
    with psycopg.connect(config.database_url, autocommit=True) as conn:
        conn.execute("UPDATE delivery_keys SET seen_ms = seen_ms - %s", (by_ms,))


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks")
    create_source(client, id="stripe", delivery_id_path="id")
    return client


@pytest.mark.parametrize(
    "header", ["Idempotency-Key", "X-Event-Id", "X-GitHub-Delivery", "webhook-id"]
)
def test_a_repeated_delivery_id_is_stored_once(hooks: TestClient, header: str) -> None:
    first = hooks.post("/collect/push/hooks", json={"n": 1}, headers={header: "d-1"}).json()
    again = hooks.post("/collect/push/hooks", json={"n": 1}, headers={header: "d-1"}).json()
    assert "duplicate" not in first
    assert again["duplicate"] is True
    assert again["id"] == first["id"]
    other = hooks.post("/collect/push/hooks", json={"n": 2}, headers={header: "d-2"}).json()
    assert other["id"] != first["id"]
    assert len(all_events(hooks, source_id="hooks")) == 2


def test_the_same_id_from_two_sources_is_two_deliveries(hooks: TestClient) -> None:
    create_source(hooks, id="other")
    a = hooks.post("/collect/x/hooks", json={}, headers={"Idempotency-Key": "k"}).json()
    b = hooks.post("/collect/x/other", json={}, headers={"Idempotency-Key": "k"}).json()
    assert a["id"] != b["id"]
    assert "duplicate" not in b


def test_a_payload_path_names_the_delivery_id(hooks: TestClient) -> None:
    body = {"id": "evt_123", "type": "charge.succeeded"}
    first = hooks.post("/collect/charge/stripe", json=body).json()
    again = hooks.post("/collect/charge/stripe", json=body).json()
    assert again == {**first, "duplicate": True, "body_differs": False}
    assert len(all_events(hooks, source_id="stripe")) == 1
    cleared = hooks.patch("/api/sources/stripe", json={"delivery_id_path": None}).json()
    assert cleared["delivery_id_path"] is None
    hooks.post("/collect/charge/stripe", json=body)
    assert len(all_events(hooks, source_id="stripe")) == 2


def test_an_expired_delivery_id_is_a_new_delivery(hooks: TestClient, config: Config) -> None:
    first = hooks.post("/collect/x/hooks", json={}, headers={"Idempotency-Key": "old"}).json()
    window_ms = config.idempotency_window_seconds * 1000
    age_delivery_keys(config, window_ms + 1)
    again = hooks.post("/collect/x/hooks", json={}, headers={"Idempotency-Key": "old"}).json()
    assert "duplicate" not in again
    assert again["id"] != first["id"]


def test_an_overlong_delivery_id_is_refused_and_nothing_stored(hooks: TestClient) -> None:
    answer = hooks.post("/collect/x/hooks", json={}, headers={"Idempotency-Key": "k" * 300})
    assert_error_shape(answer, 400)
    assert all_events(hooks, source_id="hooks") == []


@pytest.mark.e2e  # starts a real server process
def test_concurrent_duplicates_race_safely(live_server: LiveServer) -> None:
    with live_server.client() as http:
        create_source(http, id="hooks")
    barrier = threading.Barrier(16)
    ids: list[str] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            barrier.wait(timeout=30)
            answer = http.post(
                "/collect/push/hooks", json={}, headers={"X-GitHub-Delivery": "same"}
            )
            assert answer.status_code == 200
            with lock:
                ids.append(answer.json()["id"])

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 16
    assert len(set(ids)) == 1
    with live_server.client() as http:
        assert [e["id"] for e in all_events(http, source_id="hooks")] == ids[:1]


def test_a_reused_delivery_id_with_another_body_says_the_body_differs(hooks: TestClient) -> None:
    """The first body wins; a sender who reused an id for different content is told so."""
    key = {"Idempotency-Key": "k-1"}
    first = hooks.post("/collect/push/hooks", json={"n": 1, "s": "a"}, headers=key).json()
    same = hooks.post(
        "/collect/push/hooks",
        content=b'{ "s": "a",  "n": 1 }',  # the same properties, written differently
        headers={**key, "content-type": "application/json"},
    ).json()
    other = hooks.post("/collect/push/hooks", json={"n": 2, "s": "a"}, headers=key).json()
    assert same == {**first, "duplicate": True, "body_differs": False}
    assert other == {**first, "duplicate": True, "body_differs": True}
    stored = all_events(hooks, source_id="hooks")
    assert [e["properties"] for e in stored] == [{"n": 1, "s": "a"}]


def test_a_repeated_delivery_whose_first_event_was_erased_cannot_say_whether_it_differs(
    hooks: TestClient,
) -> None:
    profiled = create_source(
        hooks,
        id="crm",
        identification=[{"path": "email", "kind": "email", "create_profile": True}],
    )
    key = {"Idempotency-Key": "k-erased"}
    first = hooks.post(
        f"/collect/signup/{profiled['id']}", json={"email": "a@example.com"}, headers=key
    ).json()
    assert hooks.delete(f"/api/profiles/{first['profile_id']}").status_code == 200
    again = hooks.post(
        f"/collect/signup/{profiled['id']}", json={"email": "a@example.com"}, headers=key
    ).json()
    assert again["duplicate"] is True
    assert again["body_differs"] is None
