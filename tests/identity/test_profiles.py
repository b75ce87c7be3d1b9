"""The profiles API and CLI: reading a profile, finding it by identifier, erasing it."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.cli.main import cli
from eventstitch.config import Config
from tests.conftest import assert_error_shape, create_source, stored_events
from tests.identity.support import (
    EMAIL_RULE,
    cli_json,
    collect,
    find,
    identifiers,
    owner,
    profile,
    system_events,
)

RULES = [
    EMAIL_RULE,
    {"path": "other_email", "kind": "email"},
    {"path": "contact.phone", "kind": "phone"},
]


@pytest.fixture
def shop(client: TestClient) -> TestClient:
    create_source(
        client,
        id="shop",
        identification=RULES,
        traits={"name": "user", "plan": "account.plan"},
    )
    create_source(client, id="other")
    return client


def test_profile_shows_identifiers_traits_and_recent_events(shop: TestClient) -> None:
    first = collect(
        shop, "shop", {"email": "a@a.com", "user": "John", "contact": {"phone": "+48601234567"}}
    )
    second = collect(shop, "shop", {"email": "A@a.com", "account": {"plan": "pro"}})

    body = profile(shop, first["profile_id"])

    assert body["id"] == first["profile_id"]
    assert body["merged_into"] is None
    assert body["created_at"].endswith("Z")
    assert body["updated_at"] >= body["created_at"]
    assert body["identifiers"] == [
        {"kind": "email", "value": "a@a.com"},
        {"kind": "phone", "value": "+48601234567"},
    ]
    assert body["traits"] == {"name": "John", "plan": "pro"}
    assert [e["id"] for e in body["recent_events"]] == [second["id"], first["id"]]
    assert body["merges"] == []


def test_newest_event_wins_a_trait(shop: TestClient) -> None:
    first = collect(shop, "shop", {"email": "a@a.com", "user": "John"})
    collect(shop, "shop", {"email": "a@a.com", "user": "Johnny"})

    assert profile(shop, first["profile_id"])["traits"]["name"] == "Johnny"


def test_find_by_identifier_normalises_the_value_as_at_ingest(shop: TestClient) -> None:
    answer = collect(shop, "shop", {"email": "a@a.com", "contact": {"phone": "+48 601 234 567"}})

    by_email = find(shop, "email: A@A.COM ")
    by_phone = find(shop, "phone:+48 601-234-567")

    assert [p["id"] for p in by_email] == [answer["profile_id"]]
    assert [p["id"] for p in by_phone] == [answer["profile_id"]]
    assert identifiers(by_email[0]) == {"email:a@a.com", "phone:+48601234567"}
    assert find(shop, "email:nobody@a.com") == []


@pytest.mark.parametrize("identifier", ["a@a.com", "Email:a@a.com", "email:undefined", "phone:12"])
def test_find_refuses_identifiers_that_cannot_identify(shop: TestClient, identifier: str) -> None:
    answer = shop.get("/api/profiles", params={"identifier": identifier})

    body = assert_error_shape(answer, 400)
    assert body["errors"][0]["field"] == "identifier"


def test_unknown_profile_is_404_in_the_error_shape(shop: TestClient) -> None:
    assert_error_shape(shop.get("/api/profiles/nope"), 404)
    assert_error_shape(shop.delete("/api/profiles/nope"), 404)


def test_profiles_api_needs_the_token(shop: TestClient) -> None:
    answer = shop.get("/api/profiles/x", headers={"Authorization": "Bearer wrong"})

    assert_error_shape(answer, 401)


# -- erasure -------------------------------------------------------------------------------


def _counts_by_source(client: TestClient) -> dict[str, int]:
    answer = client.get("/api/insights/counts", params={"by": "source"})
    assert answer.status_code == 200, answer.text
    return {row["source"]: row["count"] for row in answer.json()["rows"]}


def test_erasure_removes_the_profile_and_its_events_and_says_how_many(shop: TestClient) -> None:
    mine = [collect(shop, "shop", {"email": "a@a.com", "n": n}) for n in range(3)]
    theirs = collect(shop, "shop", {"email": "b@b.com"})
    unrelated = collect(shop, "other", {"email": "a@a.com"})  # no rules: not linked
    before = _counts_by_source(shop)

    answer = shop.delete(f"/api/profiles/{mine[0]['profile_id']}")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "ok": True,
        "profile_id": mine[0]["profile_id"],
        "profiles_removed": 1,
        "events_removed": 3,
    }
    assert_error_shape(shop.get(f"/api/profiles/{mine[0]['profile_id']}"), 404)
    for gone in mine:
        assert_error_shape(shop.get(f"/api/events/{gone['id']}"), 404)
    assert find(shop, "email:a@a.com") == []
    remaining = {e["id"] for e in stored_events(shop) if e["source_id"] != "system"}
    assert remaining == {theirs["id"], unrelated["id"]}
    assert stored_events(shop, profile_id=mine[0]["profile_id"]) == []
    after = _counts_by_source(shop)
    assert after["shop"] == before["shop"] - 3
    assert after["other"] == before["other"]
    assert owner(shop, "email:b@b.com") == theirs["profile_id"]


def test_erasure_also_drops_the_events_from_filtered_and_conversion_insights(
    shop: TestClient,
) -> None:
    collect(shop, "shop", {"email": "a@a.com"})
    kept = collect(shop, "shop", {"email": "b@b.com"})
    gone = collect(shop, "shop", {"email": "a@a.com"})

    shop.delete(f"/api/profiles/{gone['profile_id']}")

    counts = shop.get("/api/insights/counts", params={"source_id": "shop", "converted": "true"})
    assert counts.json()["total"] == 1
    conversion = shop.get("/api/insights/conversion", params={"source_id": "shop"}).json()
    assert conversion["rows"] == [
        {"source": "shop", "profile_less": 1, "converted": 1, "rate": 1.0, "by_kind": {"email": 1}}
    ]
    assert [e["id"] for e in stored_events(shop, source_id="shop")] == [kept["id"]]


def test_erasing_a_merged_id_erases_the_survivor_and_everything_merged_into_it(
    shop: TestClient,
) -> None:
    older = collect(shop, "shop", {"email": "a@a.com"})
    newer = collect(shop, "shop", {"email": "b@b.com"})
    joining = collect(shop, "shop", {"email": "a@a.com", "other_email": "b@b.com"})
    bystander = collect(shop, "shop", {"email": "c@c.com"})

    answer = shop.delete(f"/api/profiles/{newer['profile_id']}")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "ok": True,
        "profile_id": older["profile_id"],
        "profiles_removed": 2,
        "events_removed": 3,
    }
    for profile_id in (older["profile_id"], newer["profile_id"]):
        assert_error_shape(shop.get(f"/api/profiles/{profile_id}"), 404)
    for gone in (older, newer, joining):
        assert_error_shape(shop.get(f"/api/events/{gone['id']}"), 404)
    assert find(shop, "email:a@a.com") == find(shop, "email:b@b.com") == []
    assert owner(shop, "email:c@c.com") == bystander["profile_id"]


def test_after_erasure_the_same_email_starts_a_new_profile(shop: TestClient) -> None:
    first = collect(shop, "shop", {"email": "a@a.com"})
    shop.delete(f"/api/profiles/{first['profile_id']}")

    again = collect(shop, "shop", {"email": "a@a.com"})

    assert again["profile_id"] not in (None, first["profile_id"])
    assert stored_events(shop, profile_id=again["profile_id"])[0]["id"] == again["id"]


def test_erasure_removes_tracked_sessions_too(client: TestClient) -> None:
    create_source(client, id="web", kind="tracker")
    visit = {"source": {"id": "web"}, "session": {"id": "s-1"}, "events": [{"type": "view"}]}
    first = client.post("/track", json=visit).json()

    client.delete(f"/api/profiles/{first['profile']['id']}")
    again = client.post("/track", json=visit).json()

    # The session went with the profile: the same session id now starts someone new.
    assert again["profile"]["id"] != first["profile"]["id"]
    assert stored_events(client, source_id="web")[0]["id"] == again["events"][0]["id"]


def test_erasure_leaves_the_persons_identifiers_nowhere_in_the_events_api(
    shop: TestClient,
) -> None:
    answer = collect(shop, "shop", {"email": "forget.me@a.com"})

    shop.delete(f"/api/profiles/{answer['profile_id']}")

    everything = stored_events(shop)
    assert "forget.me@a.com" not in str(everything)
    assert answer["profile_id"] not in str(everything)


def test_erasure_redacts_the_persons_merges_and_refusals_but_keeps_the_events(
    client: TestClient,
) -> None:
    create_source(
        client,
        id="hooks",
        identification=[*RULES, {"path": "user_id", "kind": "user_id"}],
    )
    ann = collect(client, "hooks", {"email": "ann@a.com", "user_id": "u1"})
    annie = collect(client, "hooks", {"email": "annie@a.com"})
    bob = collect(client, "hooks", {"email": "bob@b.com", "user_id": "u2"})
    collect(client, "hooks", {"email": "ann@a.com", "other_email": "annie@a.com"})
    collect(client, "hooks", {"email": "bob@b.com", "other_email": "ann@a.com"})
    counts_before = {
        t: len(system_events(client, t))
        for t in ("profile-created", "profiles-merged", "profile-merge-refused")
    }

    client.delete(f"/api/profiles/{ann['profile_id']}")

    everything = str(stored_events(client))
    for gone in ("ann@a.com", "annie@a.com", ann["profile_id"], annie["profile_id"]):
        assert gone not in everything
    assert "bob@b.com" in everything
    counts_after = {t: len(system_events(client, t)) for t in counts_before}
    assert (
        counts_after
        == counts_before
        == {
            "profile-created": 3,
            "profiles-merged": 1,
            "profile-merge-refused": 1,
        }
    )
    [merged] = system_events(client, "profiles-merged")
    assert merged["properties"]["erased"] is True
    [refused] = system_events(client, "profile-merge-refused")
    assert refused["properties"]["kind"] == "user_id"
    assert bob["profile_id"] in refused["properties"]["profiles"]
    assert None in refused["properties"]["profiles"]


# -- CLI -----------------------------------------------------------------------------------


def test_cli_show_find_and_erase_match_the_api(
    shop: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = collect(shop, "shop", {"email": "a@a.com", "user": "John"})
    collect(shop, "shop", {"email": "a@a.com"})
    api_body = profile(shop, first["profile_id"])

    shown = cli_json(monkeypatch, config, "profiles", "show", first["profile_id"])
    found = cli_json(monkeypatch, config, "profiles", "find", "email:A@A.com")

    expected = {k: v for k, v in api_body.items() if k not in ("recent_events", "updated_at")}
    assert {k: v for k, v in shown.items() if k != "updated_at"} == expected
    assert [p["id"] for p in found["profiles"]] == [first["profile_id"]]

    erased = cli_json(monkeypatch, config, "profiles", "erase", first["profile_id"], "--yes")

    assert erased == {"profile_id": first["profile_id"], "profiles_removed": 1, "events_removed": 2}
    assert_error_shape(shop.get(f"/api/profiles/{first['profile_id']}"), 404)
    assert cli_json(monkeypatch, config, "profiles", "find", "email:a@a.com") == {"profiles": []}


def test_cli_show_of_a_merged_profile_names_the_survivor(
    shop: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = collect(shop, "shop", {"email": "a@a.com"})
    newer = collect(shop, "shop", {"email": "b@b.com"})
    collect(shop, "shop", {"email": "a@a.com", "other_email": "b@b.com"})

    shown: dict[str, Any] = cli_json(monkeypatch, config, "profiles", "show", newer["profile_id"])

    assert shown["merged_into"] == older["profile_id"]
    assert [m["survivor"] for m in shown["merges"]] == [older["profile_id"]]


def test_cli_erase_without_yes_asks_and_keeps_the_profile_when_declined(
    shop: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = collect(shop, "shop", {"email": "a@a.com"})
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))

    result = CliRunner().invoke(cli, ["profiles", "erase", first["profile_id"]], input="n\n")

    assert result.exit_code == 1
    assert profile(shop, first["profile_id"])["id"] == first["profile_id"]


def test_cli_show_of_an_unknown_profile_fails_with_a_message(
    config: Config, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))

    result = CliRunner().invoke(cli, ["profiles", "show", "nope", "--json"])

    assert result.exit_code == 1
    assert "nope" in result.output
    assert system_events(client, "profile-created") == []


API_RULES = [
    {"path": "email", "kind": "email", "create_profile": True},
    {"path": "phone", "kind": "phone", "create_profile": True},
    {"path": "uid", "kind": "user_id"},
]


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks", identification=API_RULES, traits={"plan": "plan"})
    return client


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"source": {"id": "hooks"}, "events": [{"type": "x"}]}, 403, None),
        ({"source": {"id": "nope"}, "events": [{"type": "x"}]}, 404, None),
        ({"source": {"id": "web"}, "events": []}, 422, "events"),
        ({"source": {"id": "web"}, "events": "x"}, 422, "events"),
        ({"source": {"id": "web"}, "events": [{"properties": {}}]}, 422, "events[0].type"),
        ({"events": [{"type": "x"}]}, 422, "source"),
        (
            {"source": {"id": "web"}, "events": [{"type": "x", "properties": [1]}]},
            422,
            "events[0].properties",
        ),
    ],
)
def test_tracking_refusals_store_nothing(
    hooks: TestClient, body: dict[str, Any], status: int, field: str | None
) -> None:
    create_source(hooks, id="web", kind="tracker")
    error = assert_error_shape(hooks.post("/track", json=body), status)
    if field:
        assert error["errors"][0]["field"] == field
    assert stored_events(hooks, source_id=["web", "hooks"]) == []
