"""What the console pages show, in process on both backends: the live tail's throttle, an
event's profile and how it was linked, the overview's counts, a replay refused again."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from eventstitch.console.service import TAIL_ROWS
from tests.conftest import API_TOKEN, create_source, stored_events


@pytest.fixture
def browser(config: Config) -> Iterator[TestClient]:
    """Signed in, cookies kept, no bearer token."""
    with TestClient(EventstitchApp(config), follow_redirects=False) as browser:
        assert browser.post("/signin", data={"token": API_TOKEN}).status_code == 303
        yield browser


def _csrf(browser: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', browser.get("/sources").text)
    assert found is not None
    return found.group(1)


def _post(client: TestClient, source_id: str, body: dict[str, object]) -> None:
    answer = client.post(f"/collect/order.paid/{source_id}", json=body)
    assert answer.status_code < 300, answer.text


def test_live_tail_draws_at_most_its_rows_and_says_when_it_skipped(
    client: TestClient, browser: TestClient
) -> None:
    create_source(client, id="shop")
    _post(client, "shop", {"n": -1})
    [first] = stored_events(client, source_id="shop")
    for n in range(TAIL_ROWS):
        _post(client, "shop", {"n": n})
    calm = browser.get("/events/tail", params={"source": "shop", "after": first["id"]})
    assert calm.text.count('class="event"') == TAIL_ROWS
    assert 'id="skipped"' not in calm.text  # the one before the page is the one already shown
    _post(client, "shop", {"n": TAIL_ROWS})
    flood = browser.get("/events/tail", params={"source": "shop", "after": first["id"]})
    assert flood.text.count('class="event"') == TAIL_ROWS
    assert 'id="skipped"' in flood.text
    newest = stored_events(client, source_id="shop")[0]["id"]
    assert f"after={newest}" in flood.text  # the next refresh asks from the newest drawn


def test_event_page_shows_the_payload_and_the_profile_linked_at_ingest(
    client: TestClient, browser: TestClient
) -> None:
    create_source(
        client,
        id="shop",
        identification=[{"path": "email", "kind": "email", "create_profile": True}],
    )
    _post(client, "shop", {"email": "ada@example.com", "total": 12})
    [event] = stored_events(client, source_id="shop")
    page = browser.get(f"/events/{event['id']}").text
    assert event["profile_id"] in page
    assert "linked by the identifier <code>email:ada@example.com</code>" in page
    assert "&#34;total&#34;: 12" in page


def test_overview_counts_stored_events_by_type_and_source(
    client: TestClient, browser: TestClient
) -> None:
    create_source(client, id="shop")
    for n in range(3):
        _post(client, "shop", {"n": n})
    page = browser.get("/").text
    stored = len(stored_events(client))  # the system source's own events count too
    assert re.search(rf'id="stored">\s*{stored}\s*<', page)
    assert re.search(r"<td>order\.paid</td><td>3</td>", page)
    assert re.search(r"<td>shop</td><td>3</td>", page)


def test_replaying_twice_shows_the_apis_refusal(client: TestClient, browser: TestClient) -> None:
    assert client.post("/collect/order.paid/later", json={"n": 1}).status_code == 404
    create_source(client, id="later")
    [refusal] = client.get("/api/rejections").json()["rejections"]
    csrf = _csrf(browser)
    replayed = browser.post(f"/refusals/{refusal['id']}/replay", data={"csrf": csrf})
    assert 'id="replay-answer"' in replayed.text
    assert len(stored_events(client, source_id="later")) == 1
    again = browser.post(f"/refusals/{refusal['id']}/replay", data={"csrf": csrf})
    assert 'id="replay-error"' in again.text
    assert "replayed" in again.text
    assert len(stored_events(client, source_id="later")) == 1
