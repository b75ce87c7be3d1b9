"""The webhook bridge end to end: the product brief's example, stored and read back."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import LiveServer, create_source, stored_events


def test_collect_stores_brief_example_as_profile_less_event(client: TestClient) -> None:
    create_source(client, id="shop-hooks")
    body = {"url": "https://example.com", "user": "John", "email": "a@a.com"}

    answer = client.post("/collect/Page View/shop-hooks", json=body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["profile_less"] is True
    stored = client.get(f"/api/events/{answer.json()['id']}").json()
    assert stored["type"] == "page-view"
    assert stored["properties"] == body
    assert stored["profile_less"] is True
    assert stored["profile_id"] is None
    assert stored["session_id"] is None
    assert stored["source_id"] == "shop-hooks"


@pytest.mark.e2e  # starts a real server process
def test_collect_over_real_http_is_readable_through_api(live_server: LiveServer) -> None:
    with live_server.client() as http:
        create_source(http, id="hooks")
        for n in range(3):
            assert http.post("/collect/order/hooks", json={"n": n}).status_code == 200
        events = stored_events(http, type="order")
    assert [e["properties"]["n"] for e in events] == [2, 1, 0]
