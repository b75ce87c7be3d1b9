"""Two collector processes on one PostgreSQL database: they migrate it at the same moment
without tripping over each other, store every accepted event once between them, agree at once
on a disabled source, and create one profile for one person between them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer, all_events, assert_error_shape, create_source, start_server
from tests.pg import fresh_database_url

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

T = TypeVar("T")


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(released, calls))


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database_url() as url:
        yield url


@pytest.fixture
def two_servers(tmp_path: Path, database_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two `eventstitch serve` processes started at the same moment on one fresh database;
    each has its own data folder, so the database is all they share."""
    servers: list[LiveServer] = []

    def start(name: str) -> LiveServer:
        server = start_server(
            tmp_path / name, tmp_path / f"{name}.log", EVENTSTITCH_DATABASE_URL=database_url
        )
        servers.append(server)
        return server

    try:
        one, two = at_once(lambda: start("one"), lambda: start("two"))
        yield one, two
    finally:
        for server in servers:
            server.stop()


def schema_versions(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY 1")]


def shipped_versions() -> list[int]:
    """The versions of the PostgreSQL migrations in the package."""
    folder = resources.files("eventstitch.storage.postgres.migrations")
    return sorted(int(f.name.split("_", 1)[0]) for f in folder.iterdir() if f.name.endswith(".sql"))


def test_processes_started_together_migrate_once(
    two_servers: tuple[LiveServer, LiveServer], database_url: str
) -> None:
    one, two = two_servers
    assert schema_versions(database_url) == shipped_versions()  # each applied, once
    for server in (one, two):
        with server.client() as http:
            assert http.get("/health").json()["database"] == "ok"
            assert [s["id"] for s in http.get("/api/sources").json()["sources"]] == ["system"]


def post_many(url: str, prefix: str, count: int) -> list[tuple[int, str | None]]:
    """POST `count` events from one client; (status, event id) of each answer."""
    answers = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for n in range(count):
            answer = http.post("/collect/order/hooks", json={"from": prefix, "n": n})
            answers.append(
                (answer.status_code, answer.json().get("id") if answer.is_success else None)
            )
    return answers


def test_events_sent_to_both_processes_at_once_are_each_stored_once(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    one, two = two_servers
    with one.client() as http:
        create_source(http, id="hooks")
    senders = [
        (lambda url=server.url, name=f"{i}-{k}": post_many(url, name, 60))
        for i, server in enumerate((one, two))
        for k in range(4)
    ]
    answers = [answer for batch in at_once(*senders) for answer in batch]
    accepted = [event_id for status, event_id in answers if 200 <= status < 300]
    assert len(accepted) == len(answers) == 480  # nothing was overloaded at this rate
    assert len(set(accepted)) == len(accepted)
    for server in (one, two):
        with server.client() as http:
            stored = [e["id"] for e in all_events(http, source_id="hooks")]
            assert sorted(stored) == sorted(accepted)
            counts = http.get("/api/insights/counts", params={"by": "source"}).json()
            assert {r["source"]: r["count"] for r in counts["rows"]}["hooks"] == 480


def test_a_source_disabled_through_one_process_is_refused_by_the_other_at_once(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    one, two = two_servers
    with one.client() as http_one, two.client() as http_two:
        create_source(http_one, id="hooks")
        # The other process reads the source, so its cache holds it as enabled.
        assert http_two.post("/collect/order/hooks", json={"n": 0}).status_code == 200
        assert http_one.patch("/api/sources/hooks", json={"enabled": False}).status_code == 200
        for n in range(1, 6):
            assert_error_shape(http_two.post("/collect/order/hooks", json={"n": n}), 403)
        assert [e["properties"]["n"] for e in all_events(http_two, source_id="hooks")] == [0]
        # Removed: refused at once too (as disabled while the other's cached copy lasts).
        assert http_one.delete("/api/sources/hooks").status_code in (200, 204)
        refused = http_two.post("/collect/order/hooks", json={"n": 9})
        assert_error_shape(refused, refused.status_code)
        assert refused.status_code in (403, 404)
        assert len(all_events(http_two, source_id="hooks")) == 1


def test_first_contacts_in_both_processes_at_once_create_one_profile(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    one, two = two_servers
    rule = [{"path": "email", "kind": "email", "create_profile": True}]
    with one.client() as http:
        create_source(http, id="hooks", identification=rule)

    def contact(url: str, n: int) -> Callable[[], Any]:
        def send() -> Any:
            with httpx.Client(base_url=url, timeout=30) as http:
                answer = http.post(
                    "/collect/signup/hooks", json={"email": "race@example.com", "n": n}
                )
                assert answer.status_code == 200, answer.text
                return answer.json()["profile_id"]

        return send

    answers = at_once(*(contact((one, two)[n % 2].url, n) for n in range(32)))
    assert None not in answers
    assert len(set(answers)) == 1
    with two.client() as http:
        found = http.get("/api/profiles", params={"identifier": "email:race@example.com"})
        assert [p["id"] for p in found.json()["profiles"]] == [answers[0]]
        created = all_events(http, source_id="system", type="profile-created")
        assert len(created) == 1
