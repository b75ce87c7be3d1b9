"""32 first contacts with one email at the same moment make exactly one profile, in one
collector process or two sharing the store."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx2 as httpx

from tests.conftest import LiveServer, create_source, start_server

RULE = [{"path": "email", "kind": "email", "create_profile": True}]


def first_contacts(urls: list[str], count: int = 32) -> list[str | None]:
    """Send `count` events with the same new email at once (all released together)."""
    barrier = threading.Barrier(count)
    answers: list[str | None] = [None] * count

    def send(n: int) -> None:
        with httpx.Client(base_url=urls[n % len(urls)], timeout=30) as http:
            barrier.wait(timeout=30)
            answer = http.post("/collect/signup/hooks", json={"email": "race@example.com", "n": n})
            assert answer.status_code == 200, answer.text
            answers[n] = answer.json()["profile_id"]

    threads = [threading.Thread(target=send, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_concurrent_first_contacts_create_one_profile(live_server: LiveServer) -> None:
    with live_server.client() as http:
        create_source(http, id="hooks", identification=RULE)
    answers = first_contacts([live_server.url])
    assert None not in answers
    assert len(set(answers)) == 1
    with live_server.client() as http:
        profiles = http.get("/api/profiles", params={"identifier": "email:race@example.com"})
        assert [p["id"] for p in profiles.json()["profiles"]] == [answers[0]]
        created = http.get("/api/events", params={"source_id": "system", "type": "profile-created"})
        assert len(created.json()["events"]) == 1


def test_two_processes_on_one_store_still_create_one_profile(tmp_path: Path) -> None:
    data = tmp_path / "data"
    one = start_server(data, tmp_path / "one.log")
    two = start_server(data, tmp_path / "two.log")
    try:
        with one.client() as http:
            create_source(http, id="hooks", identification=RULE)
        answers = first_contacts([one.url, two.url])
        assert None not in answers
        assert len(set(answers)) == 1
    finally:
        one.stop()
        two.stop()
