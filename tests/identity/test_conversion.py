"""Profile-less events become events with profiles: at ingest, retroactively, by backfill."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.cli.main import cli
from eventstitch.config import Config
from tests.conftest import create_source, point_cli_at, stored_events

EMAIL_CREATES = [{"path": "email", "kind": "email", "create_profile": True}]


def profiles_of(client: TestClient, identifier: str) -> list[dict[str, Any]]:
    answer = client.get("/api/profiles", params={"identifier": identifier})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["profiles"]
    return found


def test_the_brief_example_is_converted_at_ingest(client: TestClient) -> None:
    create_source(client, id="hooks", identification=EMAIL_CREATES, traits={"name": "user"})
    body = {"url": "https://example.com", "user": "John", "email": " A@A.com "}
    answer = client.post("/collect/page-view/hooks", json=body).json()
    assert answer["profile_less"] is True
    assert answer["profile_id"]
    event = client.get(f"/api/events/{answer['id']}").json()
    assert event["profile_less"] is True  # still marked as collected without a profile
    assert event["profile_id"] == answer["profile_id"]
    assert event["converted_by"] == "email:a@a.com"
    assert event["converted_at"]
    profile = client.get(f"/api/profiles/{answer['profile_id']}").json()
    assert profile["identifiers"] == [{"kind": "email", "value": "a@a.com"}]
    assert profile["traits"] == {"name": "John"}
    assert [e["id"] for e in profile["recent_events"]] == [answer["id"]]


def test_without_create_profile_nothing_is_created(client: TestClient) -> None:
    create_source(client, id="hooks", identification=[{"path": "email", "kind": "email"}])
    answer = client.post("/collect/order/hooks", json={"email": "a@a.com"}).json()
    assert answer["profile_id"] is None
    assert profiles_of(client, "email:a@a.com") == []
    assert stored_events(client, source_id="system", type="profile-created") == []


def test_nested_stripe_like_payloads_and_form_bodies(client: TestClient) -> None:
    create_source(
        client,
        id="stripe",
        identification=[
            {
                "path": "data.object.customer_email",
                "kind": "email",
                "create_profile": True,
                "event_types": ["charge.succeeded"],
            },
        ],
    )
    create_source(
        client,
        id="forms",
        identification=[
            {"path": "email", "kind": "email", "create_profile": True},
            {"path": "phone", "kind": "phone"},
        ],
    )
    charge = {"id": "evt_1", "data": {"object": {"customer_email": "Pay@Example.org"}}}
    assert client.post("/collect/charge.succeeded/stripe", json=charge).json()["profile_id"]
    other = client.post("/collect/charge.refunded/stripe", json=charge).json()
    assert other["profile_id"] is None  # the rule is narrowed to charge.succeeded
    form = client.post(
        "/collect/signup/forms",
        content=b"email=pay%40example.org&phone=%2B48601234567",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ).json()
    [profile] = profiles_of(client, "email:PAY@example.org")
    assert form["profile_id"] == profile["id"]
    assert {"kind": "phone", "value": "+48601234567"} in profile["identifiers"]


def test_earlier_events_are_linked_when_a_profile_learns_their_identifier(
    client: TestClient,
) -> None:
    create_source(
        client,
        id="hooks",
        identification=[
            {"path": "email", "kind": "email", "create_profile": True},
            {"path": "phone", "kind": "phone"},
        ],
    )
    only_phone = client.post("/collect/call/hooks", json={"phone": "+48 601 234 567"}).json()
    phone_and_other = client.post(
        "/collect/sms/hooks", json={"phone": "+48601234567", "email": "nobody-yet"}
    ).json()
    assert only_phone["profile_id"] is None
    assert phone_and_other["profile_id"] is None
    both = client.post(
        "/collect/signup/hooks", json={"email": "a@a.com", "phone": "+48601234567"}
    ).json()
    pid = both["profile_id"]
    for earlier in (only_phone, phone_and_other):
        event = client.get(f"/api/events/{earlier['id']}").json()
        assert event["profile_id"] == pid
        assert event["converted_by"] == "phone:+48601234567"
    converted = stored_events(client, converted="true", source_id="hooks")
    assert len(converted) == 3


def test_a_tracked_profile_claims_earlier_webhook_events(client: TestClient) -> None:
    create_source(client, id="hooks", identification=[{"path": "customer.email", "kind": "email"}])
    create_source(
        client, id="web", kind="tracker", identification=[{"path": "email", "kind": "email"}]
    )
    order = client.post("/collect/order/hooks", json={"customer": {"email": "b@b.com"}}).json()
    assert order["profile_id"] is None
    tracked = client.post(
        "/track",
        json={
            "source": {"id": "web"},
            "session": {"id": "s-1"},
            "events": [{"type": "identify", "properties": {"email": "B@b.com"}}],
        },
    ).json()
    pid = tracked["profile"]["id"]
    assert client.get(f"/api/events/{order['id']}").json()["profile_id"] == pid


def test_backfill_applies_a_rule_added_later_and_is_safe_to_run_twice(
    client: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_source(client, id="hooks")
    old = [
        client.post("/collect/order/hooks", json={"email": f"u{n % 3}@x.com"}).json()
        for n in range(7)
    ]
    assert all(e["profile_id"] is None for e in old)
    patched = client.patch("/api/sources/hooks", json={"identification": EMAIL_CREATES})
    assert patched.status_code == 200
    point_cli_at(monkeypatch, config)
    for _ in range(2):
        result = CliRunner().invoke(cli, ["identity", "backfill", "--source", "hooks", "--json"])
        assert result.exit_code == 0, result.output
        assert '"linked": 7' in result.stdout
    owners = {client.get(f"/api/events/{e['id']}").json()["profile_id"] for e in old}
    assert len(owners) == 3
    for n in range(3):
        assert len(profiles_of(client, f"email:u{n}@x.com")) == 1
    finished = stored_events(client, source_id="system", type="backfill-finished")
    assert len(finished) == 2


def test_conversion_insights_per_source_and_kind(client: TestClient) -> None:
    create_source(
        client,
        id="hooks",
        identification=[
            {"path": "email", "kind": "email", "create_profile": True},
            {"path": "phone", "kind": "phone"},
        ],
    )
    client.post("/collect/a/hooks", json={"email": "a@a.com"})
    client.post("/collect/a/hooks", json={"email": "a@a.com"})
    client.post("/collect/b/hooks", json={"nothing": True})
    client.post("/collect/b/hooks", json={"phone": "+48601234567"})
    body = client.get(
        "/api/insights/conversion", params={"by": "source", "source_id": "hooks"}
    ).json()
    assert body["rows"] == [
        {"source": "hooks", "profile_less": 4, "converted": 2, "rate": 0.5, "by_kind": {"email": 2}}
    ]
    by_type = client.get(
        "/api/insights/conversion", params={"by": "type", "source_id": "hooks"}
    ).json()
    assert {r["type"]: r["converted"] for r in by_type["rows"]} == {"a": 2, "b": 0}


def test_junk_identifies_nobody(client: TestClient) -> None:
    create_source(
        client,
        id="hooks",
        identification=[*EMAIL_CREATES, {"path": "uid", "kind": "user_id", "create_profile": True}],
    )
    for junk in ("undefined", "null", "", "0", "anonymous", "[object Object]", "  NULL "):
        answer = client.post("/collect/visit/hooks", json={"email": junk, "uid": junk}).json()
        assert answer["profile_id"] is None
    assert stored_events(client, source_id="system", type="profile-created") == []


def test_profile_less_tracking_creates_no_profile_or_session(client: TestClient) -> None:
    create_source(client, id="web", kind="tracker")
    for request in (
        ("/track?profile_less=true", {"source": {"id": "web"}, "events": [{"type": "x"}]}),
        ("/track", {"source": {"id": "web"}, "profile_less": True, "events": [{"type": "x"}]}),
    ):
        answer = client.post(request[0], json=request[1]).json()
        assert answer["profile"] is None
        assert answer["session"] is None
        assert answer["events"][0]["profile_id"] is None
    assert stored_events(client, source_id="system", type="profile-created") == []
