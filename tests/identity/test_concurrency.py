"""First contacts racing each other over real HTTP: one email, one profile, however many
requests or server processes (Tracardi's users hit duplicate profiles here)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import API_TOKEN, LiveServer, create_source, start_server, stored_events
from tests.identity.support import EMAIL_RULE, find, system_events

pytestmark = pytest.mark.e2e

CONTACTS = 32
EMAIL_VARIANTS = ("first@contact.com", " First@Contact.com", "FIRST@CONTACT.COM ")


def race(urls: list[str], send: Callable[[httpx.Client, int], httpx.Response]) -> list[Any]:
    """Send CONTACTS requests at once, request n to urls[n % len(urls)]; their JSON answers."""
    start = threading.Barrier(CONTACTS, timeout=30)

    def one(n: int) -> Any:
        with httpx.Client(base_url=urls[n % len(urls)], timeout=30) as http:
            start.wait()
            answer = send(http, n)
        assert answer.status_code == 200, answer.text
        return answer.json()

    with ThreadPoolExecutor(CONTACTS) as pool:
        return list(pool.map(one, range(CONTACTS)))


def first_contact(http: httpx.Client, n: int) -> httpx.Response:
    body = {"email": EMAIL_VARIANTS[n % len(EMAIL_VARIANTS)], "n": n}
    return http.post("/collect/sign-up/hooks", json=body)


def assert_one_profile(http: httpx.Client, answers: list[dict[str, Any]]) -> None:
    [only] = find(http, "email:first@contact.com")
    assert {a["profile_id"] for a in answers} == {only["id"]}
    events = stored_events(http, source_id="hooks")
    assert len(events) == CONTACTS
    assert {e["profile_id"] for e in events} == {only["id"]}
    assert sorted(e["properties"]["n"] for e in events) == list(range(CONTACTS))
    assert len(system_events(http, "profile-created")) == 1


def test_concurrent_first_contacts_with_one_email_create_exactly_one_profile(
    live_server: LiveServer,
) -> None:
    with live_server.client() as http:
        create_source(http, id="hooks", identification=[EMAIL_RULE])

        answers = race([live_server.url], first_contact)

        assert_one_profile(http, answers)


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two server processes on one SQLite data folder."""
    data_dir = tmp_path / "data"
    first = start_server(data_dir, tmp_path / "first.log")
    try:
        second = start_server(data_dir, tmp_path / "second.log")
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_first_contacts_spread_over_two_processes_create_exactly_one_profile(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_servers
    with first.client() as http:
        create_source(http, id="hooks", identification=[EMAIL_RULE])

        answers = race([first.url, second.url], first_contact)

        assert_one_profile(http, answers)
    with second.client() as http:
        assert len(find(http, "email:first@contact.com")) == 1


def test_concurrent_tracked_logins_with_one_email_end_in_one_live_profile(
    live_server: LiveServer,
) -> None:
    with live_server.client() as http:
        create_source(
            http, id="web", kind="tracker", identification=[{"path": "email", "kind": "email"}]
        )

        def login(client: httpx.Client, n: int) -> httpx.Response:
            event = {"type": "login", "properties": {"email": "First@Contact.com", "n": n}}
            return client.post("/track", json={"source": {"id": "web"}, "events": [event]})

        answers = race([live_server.url], login)

        [only] = find(http, "email:first@contact.com")
        assert {a["profile"]["id"] for a in answers} == {only["id"]}
        events = stored_events(http, source_id="web")
        assert len(events) == CONTACTS
        assert {e["profile_id"] for e in events} == {only["id"]}
        merged = len(system_events(http, "profiles-merged"))
        assert merged == CONTACTS - 1  # every other visitor's profile went into the first
        body = http.get(f"/api/profiles/{only['id']}").json()
        assert body["merged_into"] is None
        assert {(i["kind"], i["value"]) for i in body["identifiers"]} == {
            ("email", "first@contact.com")
        }


def test_api_token_is_needed_for_profiles_on_a_real_server(live_server: LiveServer) -> None:
    answer = httpx.get(f"{live_server.url}/api/profiles?identifier=email:a@a.com", timeout=10)

    assert answer.status_code == 401
    assert API_TOKEN not in answer.text
