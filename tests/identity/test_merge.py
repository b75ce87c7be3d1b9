"""Merging profiles when one event names two of them, and the guards against over-merging."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from tests.conftest import API_TOKEN, create_source, make_config, stored_events
from tests.identity.support import (
    EMAIL_RULE,
    backfill_in_app,
    collect,
    event,
    find,
    identifiers,
    owner,
    profile,
    system_events,
)

RULES = [
    EMAIL_RULE,
    {"path": "other_email", "kind": "email"},
    {"path": "user_id", "kind": "user_id"},
    {"path": "phone", "kind": "phone"},
]


def _two_profiles(
    client: TestClient, first: dict[str, str], second: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    create_source(client, id="hooks", identification=RULES, traits={"name": "name"})
    older = collect(client, "hooks", first)
    newer = collect(client, "hooks", second)
    assert older["profile_id"] is not None
    assert newer["profile_id"] is not None
    assert older["profile_id"] != newer["profile_id"]
    return older, newer


def test_event_naming_two_profiles_merges_them_into_the_older(client: TestClient) -> None:
    older, newer = _two_profiles(
        client,
        {"email": "a@a.com", "name": "Ann"},
        {"email": "b@b.com", "phone": "+48601234567", "name": "Annie", "city": "x"},
    )

    joining = collect(client, "hooks", {"email": "b@b.com", "other_email": "A@A.com"})

    survivor, merged = older["profile_id"], newer["profile_id"]
    assert joining["profile_id"] == survivor
    body = profile(client, survivor)
    assert body["merged_into"] is None
    assert identifiers(body) == {"email:a@a.com", "email:b@b.com", "phone:+48601234567"}
    assert body["traits"] == {"name": "Ann"}  # the survivor's own value wins
    for identifier in ("email:a@a.com", "email:b@b.com", "phone:+48601234567"):
        assert owner(client, identifier) == survivor
    moved = stored_events(client, profile_id=survivor)
    assert {e["id"] for e in moved} == {older["id"], newer["id"], joining["id"]}
    assert stored_events(client, profile_id=merged) == []


def test_merged_profile_id_answers_with_a_pointer_to_the_survivor(client: TestClient) -> None:
    older, newer = _two_profiles(client, {"email": "a@a.com"}, {"email": "b@b.com"})
    joining = collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

    answer = client.get(f"/api/profiles/{newer['profile_id']}")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == newer["profile_id"]
    assert body["merged_into"] == older["profile_id"]
    assert body["profile"]["id"] == older["profile_id"]
    assert body["profile"]["merged_into"] is None
    assert {e["id"] for e in body["profile"]["recent_events"]} >= {newer["id"], joining["id"]}
    assert event(client, newer["id"])["profile_id"] == older["profile_id"]


def test_merge_is_listed_on_both_profiles_and_as_a_system_event(client: TestClient) -> None:
    older, newer = _two_profiles(client, {"email": "a@a.com"}, {"email": "b@b.com"})
    joining = collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

    expected = {
        "survivor": older["profile_id"],
        "merged": newer["profile_id"],
        "event_id": joining["id"],
        "refused": False,
        "kind": None,
    }
    for profile_id in (older["profile_id"], newer["profile_id"]):
        merges = client.get(f"/api/profiles/{profile_id}").json()["merges"]
        assert [{k: m[k] for k in expected} for m in merges] == [expected]
    [happening] = system_events(client, "profiles-merged")
    assert happening["properties"] == {
        "survivor": older["profile_id"],
        "merged": newer["profile_id"],
        "event_id": joining["id"],
    }


def test_merging_three_profiles_at_once_keeps_the_oldest(client: TestClient) -> None:
    create_source(
        client,
        id="hooks",
        identification=[
            EMAIL_RULE,
            {"path": "billing.email", "kind": "email"},
            {"path": "shipping.email", "kind": "email"},
        ],
    )
    ids = [collect(client, "hooks", {"email": f"{n}@a.com"})["profile_id"] for n in "abc"]

    collect(
        client,
        "hooks",
        {"email": "c@a.com", "billing": {"email": "b@a.com"}, "shipping": {"email": "a@a.com"}},
    )

    assert {owner(client, f"email:{n}@a.com") for n in "abc"} == {ids[0]}
    assert profile(client, ids[1])["merged_into"] == ids[0]
    assert profile(client, ids[2])["merged_into"] == ids[0]


def test_a_merge_of_a_merge_points_straight_at_the_live_survivor(client: TestClient) -> None:
    older, newer = _two_profiles(client, {"email": "a@a.com"}, {"email": "b@b.com"})
    newest = collect(client, "hooks", {"email": "c@c.com"})
    collect(client, "hooks", {"email": "b@b.com", "other_email": "c@c.com"})
    assert profile(client, newest["profile_id"])["merged_into"] == newer["profile_id"]

    collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

    assert profile(client, newer["profile_id"])["merged_into"] == older["profile_id"]
    assert profile(client, newest["profile_id"])["merged_into"] == older["profile_id"]
    assert owner(client, "email:c@c.com") == older["profile_id"]
    assert event(client, newest["id"])["profile_id"] == older["profile_id"]


def test_profiles_with_different_user_ids_are_not_merged_and_the_refusal_is_visible(
    client: TestClient,
) -> None:
    older, newer = _two_profiles(
        client, {"email": "a@a.com", "user_id": "u1"}, {"email": "b@b.com", "user_id": "u2"}
    )

    joining = collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

    assert joining["profile_id"] == older["profile_id"]  # the event goes to the older
    first, second = profile(client, older["profile_id"]), profile(client, newer["profile_id"])
    assert first["merged_into"] is None
    assert second["merged_into"] is None
    assert identifiers(first) == {"email:a@a.com", "user_id:u1"}
    assert identifiers(second) == {"email:b@b.com", "user_id:u2"}
    for body in (first, second):
        [refusal] = body["merges"]
        assert refusal["refused"] is True
        assert refusal["kind"] == "user_id"
        assert refusal["event_id"] == joining["id"]
        assert {refusal["survivor"], refusal["merged"]} == {
            older["profile_id"],
            newer["profile_id"],
        }
    [happening] = system_events(client, "profile-merge-refused")
    assert happening["properties"]["kind"] == "user_id"
    assert system_events(client, "profiles-merged") == []


def test_a_profile_never_takes_a_second_user_id(client: TestClient) -> None:
    create_source(client, id="hooks", identification=RULES)
    first = collect(client, "hooks", {"email": "a@a.com", "user_id": "u1"})

    second = collect(client, "hooks", {"email": "a@a.com", "user_id": "u2"})

    assert second["profile_id"] == first["profile_id"]
    assert identifiers(profile(client, first["profile_id"])) == {"email:a@a.com", "user_id:u1"}
    assert find(client, "user_id:u2") == []


def test_a_user_id_refused_once_is_free_for_its_own_profile_later(client: TestClient) -> None:
    create_source(client, id="hooks", identification=RULES)
    first = collect(client, "hooks", {"email": "a@a.com", "user_id": "u1"})
    collect(client, "hooks", {"email": "a@a.com", "user_id": "u2"})

    other = collect(client, "hooks", {"email": "b@b.com", "user_id": "u2"})

    assert other["profile_id"] != first["profile_id"]
    assert owner(client, "user_id:u2") == other["profile_id"]


def test_same_user_id_on_both_sides_does_not_block_the_merge(client: TestClient) -> None:
    create_source(client, id="hooks", identification=RULES)
    older = collect(client, "hooks", {"email": "a@a.com", "user_id": "u1"})
    newer = collect(client, "hooks", {"email": "b@b.com"})

    collect(
        client, "hooks", {"email": "b@b.com", "user_id": "u1"}
    )  # b's owner is linked, not merged
    collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

    assert profile(client, newer["profile_id"])["merged_into"] == older["profile_id"]
    assert identifiers(profile(client, older["profile_id"])) == {
        "email:a@a.com",
        "email:b@b.com",
        "user_id:u1",
    }


def test_junk_values_never_merge_or_create_anyone(client: TestClient) -> None:
    create_source(client, id="hooks", identification=RULES)

    first = collect(client, "hooks", {"email": "undefined", "user_id": "0"})
    second = collect(client, "hooks", {"email": "undefined", "user_id": "null"})
    real = collect(client, "hooks", {"email": "a@a.com", "other_email": "Undefined"})

    assert first["profile_id"] is None
    assert second["profile_id"] is None
    assert real["profile_id"] is not None
    assert len(system_events(client, "profile-created")) == 1
    assert identifiers(profile(client, real["profile_id"])) == {"email:a@a.com"}
    assert client.get("/api/profiles", params={"identifier": "email:undefined"}).status_code == 400


def test_another_single_valued_kind_can_be_configured(tmp_path: Path) -> None:
    config: Config = make_config(
        tmp_path / "data", identity_single_valued_kinds=frozenset({"user_id", "email"})
    )
    with TestClient(EventstitchApp(config)) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks", identification=RULES)
        first = collect(client, "hooks", {"email": "a@a.com"})

        second = collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

        assert second["profile_id"] == first["profile_id"]
        assert identifiers(profile(client, first["profile_id"])) == {"email:a@a.com"}
        assert find(client, "email:b@b.com") == []


def test_backfill_twice_does_not_log_the_same_refusal_again(client: TestClient) -> None:
    older, _ = _two_profiles(
        client, {"email": "a@a.com", "user_id": "u1"}, {"email": "b@b.com", "user_id": "u2"}
    )
    collect(client, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

    backfill_in_app(client)
    backfill_in_app(client)

    assert len(profile(client, older["profile_id"])["merges"]) == 1
    assert len(system_events(client, "profile-merge-refused")) == 1
