"""What the console pages show, in process on both backends: the live tail's throttle, an
event's profile and how it was linked, the overview's counts, a replay refused again."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from eventstitch.console.service import TAIL_ROWS, FormError, live_filter
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


def test_overview_draws_events_per_minute_and_profile_less_counts(
    client: TestClient, browser: TestClient
) -> None:
    create_source(client, id="shop")
    for n in range(3):
        _post(client, "shop", {"n": n})
    page = browser.get("/").text
    drawn = [int(v) for v in re.findall(r'class="point"[^>]*data-value="(\d+)"', page)]
    assert len(drawn) == 60  # one point a minute, the empty ones too
    assert sum(drawn) == len(stored_events(client))  # every event of the last hour is drawn
    profile_less = sum(1 for event in stored_events(client) if event["profile_id"] is None)
    assert re.search(rf'id="profile-less">\s*{profile_less}\s*<', page)
    assert re.search(r'id="converted">\s*0\s*<', page)
    assert re.search(r'id="batch">\s*[1-9]', page)  # the commits of this process were counted
    live = browser.get("/overview/live")
    assert live.status_code == 200
    assert 'hx-get="/overview/live"' in live.text
    assert 'id="per-minute"' in live.text


def test_live_tail_filters_by_property_path_and_profile_less(
    client: TestClient, browser: TestClient
) -> None:
    create_source(client, id="shop")
    _post(client, "shop", {"plan": "pro", "n": 1})
    _post(client, "shop", {"plan": "free", "n": 2})
    _post(client, "shop", {"plan": "pro", "n": 3})
    pro = browser.get("/events/tail", params={"source": "shop", "property": "properties.plan=pro"})
    assert pro.text.count('class="event"') == 2
    assert "property=properties.plan%3Dpro" in pro.text  # the next refresh keeps the filter
    for profile_less, drawn in (("true", 2), ("false", 0)):
        both = browser.get(
            "/events/tail",
            params={"property": "properties.plan=pro", "profile_less": profile_less},
        )
        assert both.text.count('class="event"') == drawn
    bad = browser.get("/events/tail", params={"property": "plan=pro"})
    assert 'id="filter-error"' in bad.text
    assert "expected properties.&lt;path&gt;=value" in bad.text
    deep = browser.get("/events/tail", params={"property": "properties.a..b=1"})
    assert 'id="filter-error"' in deep.text
    assert "property path" in deep.text


SECRET_OLD = "old-secret-0123456789"
SECRET_NEW = "new-secret-9876543210"


def test_source_page_edits_signing_with_rotation_and_the_rate_limit(
    client: TestClient, browser: TestClient
) -> None:
    create_source(client, id="gh")
    csrf = _csrf(browser)
    refused = browser.post(
        "/sources/gh/signature", data={"csrf": csrf, "preset": "github", "secrets": "short"}
    )
    assert "body.signature.secrets.0: String should have at least 16 characters" in refused.text
    assert client.get("/api/sources/gh").json()["signature"] is None  # nothing changed
    rotating = browser.post(
        "/sources/gh/signature",
        data={"csrf": csrf, "preset": "github", "secrets": f"{SECRET_OLD}\n{SECRET_NEW}"},
    )
    assert rotating.status_code == 303
    signature = client.get("/api/sources/gh").json()["signature"]
    assert signature["preset"] == "github"
    assert signature["secret_count"] == 2
    page = browser.get("/sources/gh").text
    assert "...6789" in page
    assert "...3210" in page
    assert SECRET_OLD not in page
    stray = browser.post(
        "/sources/gh/signature",
        data={"csrf": csrf, "preset": "github", "secrets": SECRET_NEW, "header": "X-Sig"},
    )
    assert "header: not an option of github" in stray.text
    assert client.get("/api/sources/gh").json()["signature"]["secret_count"] == 2
    browser.post("/sources/gh/signature", data={"csrf": csrf, "remove": "1"})
    assert client.get("/api/sources/gh").json()["signature"] is None

    too_fast = browser.post("/sources/gh/rate-limit", data={"csrf": csrf, "per_second": "1e9"})
    assert "body.rate_limit.per_second: Input should be less than or equal to" in too_fast.text
    assert client.get("/api/sources/gh").json()["rate_limit"] is None
    saved = browser.post(
        "/sources/gh/rate-limit", data={"csrf": csrf, "per_second": "5", "burst": "10"}
    )
    assert saved.status_code == 303
    assert client.get("/api/sources/gh").json()["rate_limit"] == {"per_second": 5.0, "burst": 10}
    browser.post("/sources/gh/rate-limit", data={"csrf": csrf, "per_second": ""})
    assert client.get("/api/sources/gh").json()["rate_limit"] is None
    forged = browser.post("/sources/gh/rate-limit", data={"per_second": "5"})
    assert forged.status_code == 403
    assert client.get("/api/sources/gh").json()["rate_limit"] is None


def test_explorer_ranges_start_on_the_hour_so_counts_come_from_the_rollup(
    client: TestClient, browser: TestClient
) -> None:
    create_source(client, id="shop")
    _post(client, "shop", {"n": 1})
    page = browser.get("/insights", params={"metric": "count", "by": "day", "range": "7d"}).text
    since = re.search(r"since (\S+T\S+Z)", page)
    assert since is not None
    assert since.group(1).endswith(":00:00.000Z")
    assert "engine rollup" in page


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_live_property_filter_is_parsed_or_refused_with_a_message(text: str) -> None:
    try:
        event_filter = live_filter(type="", source="", profile_less="", property=text)
    except FormError as exc:
        refusal = exc.message
        event_filter = None
    if event_filter is None:
        assert refusal.startswith(("property", "properties.")), refusal  # names the filter
        return
    if text.strip():
        [(path, value)] = event_filter.properties
        assert path
        assert value == text.strip().partition("=")[2].strip()
    else:
        assert event_filter.properties == ()
