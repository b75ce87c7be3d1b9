"""Identification and trait rules through array paths (docs/identity.md, "Rule paths"): an index
reads one element; `[*]` yields every element's value, and several different values identify
nobody, as a list at a rule's path does."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source
from tests.identity.support import collect, event, identifiers, profile


def _mailer(client: TestClient) -> None:
    create_source(
        client,
        id="mailer",
        identification=[{"path": "recipients[*].email", "kind": "email", "create_profile": True}],
        traits={"plans": "items[*].plan", "first_plan": "items.0.plan"},
    )


def test_an_any_element_rule_with_one_value_identifies_and_sets_traits(
    client: TestClient,
) -> None:
    _mailer(client)
    answer = collect(
        client,
        "mailer",
        {
            "recipients": [{"email": "alex@x.com"}, {"email": "ALEX@x.com"}, {"name": "no mail"}],
            "items": [{"plan": "pro"}, {"plan": "pro"}],
        },
    )
    assert answer["profile_id"] is not None
    alex = profile(client, answer["profile_id"])
    assert identifiers(alex) == {"email:alex@x.com"}
    assert alex["traits"]["plans"] == ["pro"]
    assert alex["traits"]["first_plan"] == "pro"


def test_an_any_element_rule_with_several_values_identifies_nobody(client: TestClient) -> None:
    _mailer(client)
    answer = collect(
        client,
        "mailer",
        {
            "recipients": [{"email": "alex@x.com"}, {"email": "bea@y.com"}],
            "items": [{"plan": "pro"}, {"plan": "team"}],
        },
    )
    assert answer["profile_id"] is None
    assert event(client, answer["id"])["context"]["identity_skipped"] == [
        {"path": "recipients[*].email", "reason": "several_values"}
    ]
    assert (
        client.get("/api/profiles", params={"identifier": "email:alex@x.com"}).json()["profiles"]
        == []
    )


def test_an_index_rule_reads_that_element_only(client: TestClient) -> None:
    create_source(
        client,
        id="mailer",
        identification=[{"path": "recipients.0.email", "kind": "email", "create_profile": True}],
    )
    answer = collect(
        client, "mailer", {"recipients": [{"email": "alex@x.com"}, {"email": "bea@y.com"}]}
    )
    assert answer["profile_id"] is not None
    assert identifiers(profile(client, answer["profile_id"])) == {"email:alex@x.com"}


def test_rule_paths_come_back_as_written_and_bad_ones_are_refused(client: TestClient) -> None:
    _mailer(client)
    source = client.get("/api/sources/mailer").json()
    assert source["identification"][0]["path"] == "recipients[*].email"
    assert source["traits"] == {"plans": "items[*].plan", "first_plan": "items.0.plan"}
    for path in ("a[*].b[*].c", "[*].email", "a.10001"):
        answer = client.patch(
            "/api/sources/mailer", json={"identification": [{"path": path, "kind": "email"}]}
        )
        assert_error_shape(answer, 422)
