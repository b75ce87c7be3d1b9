"""Converting profile-less events into profiled events: at ingest, retroactively, by backfill;
and what the events filters and the conversion insights show of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from eventstitch.config import Config
from eventstitch.identity.service import BACKFILL_PAGE
from tests.conftest import (
    API_TOKEN,
    assert_error_shape,
    create_source,
    make_config,
    stored_events,
)
from tests.identity.support import (
    BRIEF_EXAMPLE,
    EMAIL_RULE,
    backfill_in_app,
    cli_json,
    collect,
    event,
    find,
    identifiers,
    owner,
    profile,
    set_rules,
    system_events,
    track,
)

PHONE_RULE = {"path": "phone", "kind": "phone"}


# -- at ingest -----------------------------------------------------------------------------


def test_brief_example_is_converted_at_ingest_and_stays_marked_profile_less(
    client: TestClient,
) -> None:
    create_source(client, id="shop-hooks", identification=[EMAIL_RULE])

    answer = collect(client, "shop-hooks", BRIEF_EXAMPLE)

    assert answer["profile_less"] is True
    assert answer["profile_id"] is not None
    stored = event(client, answer["id"])
    assert stored["profile_less"] is True
    assert stored["profile_id"] == answer["profile_id"]
    assert stored["converted_at"] is not None
    assert stored["converted_by"] == "email:a@a.com"
    assert stored["session_id"] is None
    assert stored["properties"] == BRIEF_EXAMPLE
    assert owner(client, "email:a@a.com") == answer["profile_id"]


def test_second_event_with_the_same_email_in_another_case_joins_the_same_profile(
    client: TestClient,
) -> None:
    create_source(client, id="shop-hooks", identification=[EMAIL_RULE])

    first = collect(client, "shop-hooks", BRIEF_EXAMPLE)
    second = collect(client, "shop-hooks", {**BRIEF_EXAMPLE, "email": "  A@A.COM "})

    assert second["profile_id"] == first["profile_id"]
    assert event(client, second["id"])["converted_by"] == "email:a@a.com"
    assert len(system_events(client, "profile-created")) == 1


def test_without_create_profile_the_event_stays_profile_less_and_creates_no_profile(
    client: TestClient,
) -> None:
    create_source(client, id="shop-hooks", identification=[{"path": "email", "kind": "email"}])

    answer = collect(client, "shop-hooks", BRIEF_EXAMPLE)

    assert answer["profile_id"] is None
    stored = event(client, answer["id"])
    assert stored["profile_id"] is None
    assert stored["session_id"] is None
    assert stored["converted_at"] is None
    assert stored["converted_by"] is None
    assert find(client, "email:a@a.com") == []
    assert system_events(client, "profile-created") == []


def test_source_without_rules_converts_nothing(client: TestClient) -> None:
    create_source(client, id="plain")

    answer = collect(client, "plain", BRIEF_EXAMPLE)

    assert answer["profile_id"] is None
    assert find(client, "email:a@a.com") == []


def test_stripe_like_nested_payload_is_converted_by_its_customer_email(
    client: TestClient,
) -> None:
    create_source(
        client,
        id="stripe",
        identification=[
            {
                "path": "data.object.customer_email",
                "kind": "email",
                "create_profile": True,
                "event_types": ["charge.succeeded", "invoice.paid"],
            },
            {"path": "data.object.customer", "kind": "stripe_customer"},
        ],
    )
    charge = {
        "id": "evt_1",
        "type": "charge.succeeded",
        "data": {"object": {"customer": "cus_9", "customer_email": "Jane@Example.org"}},
    }

    paid = collect(client, "stripe", charge, event_type="charge.succeeded")
    other = collect(client, "stripe", charge, event_type="customer.updated")

    assert paid["profile_id"] is not None
    body = profile(client, paid["profile_id"])
    assert identifiers(body) == {"email:jane@example.org", "stripe_customer:cus_9"}
    # The email rule is narrowed to two types; the customer id rule still links this one.
    assert other["profile_id"] == paid["profile_id"]
    assert event(client, other["id"])["converted_by"] == "stripe_customer:cus_9"


def test_query_string_webhook_is_converted_too(client: TestClient) -> None:
    create_source(client, id="pixel", identification=[EMAIL_RULE])

    answer = client.get("/collect/open/pixel", params={"email": "A@A.com", "campaign": "x"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["profile_id"] == owner(client, "email:a@a.com")
    assert answer.json()["profile_id"] is not None


def test_event_type_outside_a_rule_is_not_converted(client: TestClient) -> None:
    create_source(
        client,
        id="stripe",
        identification=[{**EMAIL_RULE, "event_types": ["charge.succeeded"]}],
    )

    answer = collect(client, "stripe", {"email": "a@a.com"}, event_type="customer.created")

    assert answer["profile_id"] is None
    assert find(client, "email:a@a.com") == []


def test_plain_form_webhook_is_converted_with_its_email_phone_and_name(
    client: TestClient,
) -> None:
    create_source(
        client,
        id="forms",
        identification=[EMAIL_RULE, PHONE_RULE],
        traits={"name": "name"},
    )

    answer = collect(
        client,
        "forms",
        None,
        event_type="form-submitted",
        content="name=Jane&email=Jane%40Example.org&phone=%2B48601234567",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert answer["profile_id"] is not None
    body = profile(client, answer["profile_id"])
    assert identifiers(body) == {"email:jane@example.org", "phone:+48601234567"}
    assert body["traits"] == {"name": "Jane"}
    assert event(client, answer["id"])["converted_by"] == "email:jane@example.org"


def test_junk_email_creates_no_profile_and_leaves_the_event_profile_less(
    client: TestClient,
) -> None:
    create_source(client, id="hooks", identification=[EMAIL_RULE])

    junk = ("undefined", " NULL ", "", "0", "anonymous", "[object Object]")
    answers = [collect(client, "hooks", {"email": value}) for value in junk]

    assert [a["profile_id"] for a in answers] == [None] * len(junk)
    assert system_events(client, "profile-created") == []


# -- retroactive ---------------------------------------------------------------------------


def test_earlier_profile_less_events_are_linked_when_a_later_event_creates_the_profile(
    client: TestClient,
) -> None:
    create_source(client, id="newsletter", identification=[{"path": "email", "kind": "email"}])
    create_source(client, id="shop", identification=[EMAIL_RULE])
    early = [collect(client, "newsletter", {"email": "A@a.com", "n": n}) for n in range(3)]
    assert all(a["profile_id"] is None for a in early)

    order = collect(client, "shop", {"email": "a@a.com", "total": 10})

    assert order["profile_id"] is not None
    for answer in early:
        stored = event(client, answer["id"])
        assert stored["profile_id"] == order["profile_id"]
        assert stored["converted_by"] == "email:a@a.com"
        assert stored["converted_at"] is not None
        assert stored["profile_less"] is True


def test_earlier_webhook_events_are_linked_when_a_tracked_visit_gains_the_email(
    client: TestClient,
) -> None:
    create_source(client, id="hooks", identification=[{"path": "email", "kind": "email"}])
    create_source(
        client,
        id="web",
        kind="tracker",
        identification=[{"path": "email", "kind": "email"}],
    )
    early = collect(client, "hooks", BRIEF_EXAMPLE)
    assert early["profile_id"] is None

    visit = track(
        client,
        {
            "source": {"id": "web"},
            "events": [{"type": "sign-up", "properties": {"email": "A@A.com"}}],
        },
    )

    profile_id = visit["profile"]["id"]
    stored = event(client, early["id"])
    assert stored["profile_id"] == profile_id
    assert stored["converted_by"] == "email:a@a.com"
    assert owner(client, "email:a@a.com") == profile_id


def test_retroactive_linking_follows_a_chain_of_identifiers(client: TestClient) -> None:
    """An old event carried only the email, another email and phone; when the phone's owner
    appears, both are linked: the phone brings the email along."""
    create_source(
        client,
        id="forms",
        identification=[{"path": "email", "kind": "email"}, PHONE_RULE],
    )
    create_source(
        client,
        id="calls",
        identification=[{"path": "phone", "kind": "phone", "create_profile": True}],
    )
    email_only = collect(client, "forms", {"email": "b@b.com"})
    both = collect(client, "forms", {"email": "b@b.com", "phone": "+48 601 234 567"})
    assert email_only["profile_id"] is None
    assert both["profile_id"] is None

    call = collect(client, "calls", {"phone": "+48601234567"})

    profile_id = call["profile_id"]
    assert profile_id is not None
    assert event(client, both["id"])["profile_id"] == profile_id
    assert event(client, email_only["id"])["profile_id"] == profile_id
    assert event(client, email_only["id"])["converted_by"] == "email:b@b.com"
    assert identifiers(profile(client, profile_id)) == {"phone:+48601234567", "email:b@b.com"}


def test_retroactively_linked_event_copies_its_traits(client: TestClient) -> None:
    create_source(
        client,
        id="newsletter",
        identification=[{"path": "email", "kind": "email"}],
        traits={"name": "name"},
    )
    create_source(client, id="shop", identification=[EMAIL_RULE])
    collect(client, "newsletter", {"email": "a@a.com", "name": "Ann"})

    order = collect(client, "shop", {"email": "a@a.com", "total": 10})

    assert profile(client, order["profile_id"])["traits"] == {"name": "Ann"}


def test_an_older_event_linked_retroactively_keeps_the_newer_events_trait_value(
    client: TestClient,
) -> None:
    create_source(client, id="forms", identification=[PHONE_RULE], traits={"name": "name"})
    create_source(
        client,
        id="shop",
        identification=[EMAIL_RULE, PHONE_RULE],
        traits={"name": "name"},
    )
    old_form = collect(client, "forms", {"phone": "+48601234567", "name": "Ann (old form)"})
    order = collect(client, "shop", {"email": "a@a.com", "name": "Ann"})

    # The profile learns the phone now, which links the older form retroactively.
    collect(client, "shop", {"email": "a@a.com", "phone": "+48601234567"})

    assert event(client, old_form["id"])["profile_id"] == order["profile_id"]
    assert profile(client, order["profile_id"])["traits"] == {"name": "Ann"}


def test_converted_by_names_the_identifier_the_profile_already_held(client: TestClient) -> None:
    create_source(client, id="calls", identification=[{**PHONE_RULE, "create_profile": True}])
    create_source(client, id="shop", identification=[EMAIL_RULE, PHONE_RULE])
    call = collect(client, "calls", {"phone": "+48601234567"})

    order = collect(client, "shop", {"email": "new@b.com", "phone": "+48601234567"})

    assert order["profile_id"] == call["profile_id"]
    assert event(client, order["id"])["converted_by"] == "phone:+48601234567"


def test_events_collected_without_a_profile_stay_unconverted_until_someone_owns_them(
    client: TestClient,
) -> None:
    create_source(client, id="forms", identification=[PHONE_RULE])

    answer = collect(client, "forms", {"phone": "+48601234567"})

    assert answer["profile_id"] is None
    assert find(client, "phone:+48601234567") == []
    assert stored_events(client, converted="true") == []


# -- backfill ------------------------------------------------------------------------------


def test_rule_added_later_and_cli_backfill_link_old_events(
    client: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_source(client, id="hooks")
    old = [collect(client, "hooks", {**BRIEF_EXAMPLE, "n": n}) for n in range(3)]
    other = collect(client, "hooks", {"email": "other@b.com"})
    assert all(a["profile_id"] is None for a in [*old, other])

    set_rules(client, "hooks", identification=[EMAIL_RULE])
    report = cli_json(monkeypatch, config, "identity", "backfill", "--source", "hooks")

    assert report == {"sources": 1, "events": 4, "linked": 4}
    profile_id = owner(client, "email:a@a.com")
    assert profile_id is not None
    for answer in old:
        stored = event(client, answer["id"])
        assert stored["profile_id"] == profile_id
        assert stored["converted_by"] == "email:a@a.com"
    assert owner(client, "email:other@b.com") == event(client, other["id"])["profile_id"]
    assert len(system_events(client, "backfill-finished")) == 1


def test_backfill_with_a_non_creating_rule_links_old_events_to_an_existing_owner(
    client: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_source(client, id="calls")
    create_source(client, id="shop", identification=[EMAIL_RULE, PHONE_RULE])
    old_call = collect(client, "calls", {"phone": "+48 601 234 567"})
    unknown_call = collect(client, "calls", {"phone": "+14155552671"})
    order = collect(client, "shop", {"email": "a@a.com", "phone": "+48601234567"})

    set_rules(client, "calls", identification=[PHONE_RULE])
    cli_json(monkeypatch, config, "identity", "backfill")

    assert event(client, old_call["id"])["profile_id"] == order["profile_id"]
    assert event(client, old_call["id"])["converted_by"] == "phone:+48601234567"
    assert event(client, unknown_call["id"])["profile_id"] is None
    assert find(client, "phone:+14155552671") == []


def test_backfill_twice_gives_the_same_result(
    client: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_source(client, id="hooks")
    for n in range(3):
        collect(client, "hooks", {"email": f"user{n % 2}@a.com", "n": n})
    collect(client, "hooks", {"email": "undefined"})
    set_rules(client, "hooks", identification=[EMAIL_RULE])

    first = cli_json(monkeypatch, config, "identity", "backfill")
    after_first = stored_events(client, source_id="hooks")
    second = cli_json(monkeypatch, config, "identity", "backfill")
    after_second = stored_events(client, source_id="hooks")

    assert first == second == {"sources": 1, "events": 4, "linked": 3}
    assert after_first == after_second
    assert len(system_events(client, "profile-created")) == 2
    assert len({e["profile_id"] for e in after_second if e["profile_id"]}) == 2


def test_backfill_keeps_the_newest_events_trait_value(
    client: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_source(client, id="hooks", identification=[EMAIL_RULE], traits={"name": "user"})
    collect(client, "hooks", {**BRIEF_EXAMPLE, "user": "Johnny"})
    newest = collect(client, "hooks", {**BRIEF_EXAMPLE, "user": "John"})
    assert profile(client, newest["profile_id"])["traits"] == {"name": "John"}

    backfill_in_app(client)

    assert profile(client, newest["profile_id"])["traits"] == {"name": "John"}


class Interrupted(Exception):
    """Stands for Ctrl-C or a killed process in the middle of a backfill."""


def test_interrupted_backfill_resumes_where_it_stopped(client: TestClient) -> None:
    create_source(client, id="bulk")
    total = BACKFILL_PAGE + 10
    for n in range(total):
        collect(client, "bulk", {"email": f"user{n % 3}@a.com"})
    set_rules(client, "bulk", identification=[EMAIL_RULE])

    def stop(done: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        backfill_in_app(client, "bulk", progress=stop)
    resumed = backfill_in_app(client, "bulk")

    # The first page (the newest events) was committed before the interruption.
    assert resumed == {"sources": 1, "events": 10, "linked": 10}
    converted = stored_events(client, source_id="bulk", converted="true")
    assert len(converted) == total
    assert len({e["profile_id"] for e in converted}) == 3
    assert len(system_events(client, "backfill-finished")) == 1
    # Finished: the next run starts from the newest event again.
    assert backfill_in_app(client, "bulk") == {"sources": 1, "events": total, "linked": total}


def test_backfill_service_links_old_events_like_the_cli(client: TestClient) -> None:
    create_source(client, id="hooks")
    old = collect(client, "hooks", BRIEF_EXAMPLE)
    set_rules(client, "hooks", identification=[EMAIL_RULE])

    report = backfill_in_app(client, "hooks")

    assert report == {"sources": 1, "events": 1, "linked": 1}
    assert event(client, old["id"])["converted_by"] == "email:a@a.com"


def test_backfill_of_an_unknown_source_is_refused(
    config: Config, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    result = CliRunner().invoke(cli, ["identity", "backfill", "--source", "nope"])

    assert result.exit_code == 1
    assert "nope" in result.output
    assert system_events(client, "backfill-finished") == []


# -- filters and insights ------------------------------------------------------------------


def _mixed_traffic(client: TestClient) -> dict[str, list[str]]:
    """shop: 2 converted by email, 1 not; forms: 1 converted by phone later, 1 never."""
    create_source(client, id="shop", identification=[EMAIL_RULE, PHONE_RULE])
    create_source(client, id="forms", identification=[PHONE_RULE])
    ids: dict[str, list[str]] = {"converted": [], "unconverted": []}
    late = collect(client, "forms", {"phone": "+48601234567"}, event_type="lead")
    never = collect(client, "forms", {"phone": "+14155552671"}, event_type="lead")
    for body in ({"email": "a@a.com"}, {"email": "a@a.com", "phone": "+48601234567"}):
        ids["converted"].append(collect(client, "shop", body, event_type="order")["id"])
    ids["unconverted"].append(collect(client, "shop", {"x": 1}, event_type="order")["id"])
    ids["converted"].append(late["id"])
    ids["unconverted"].append(never["id"])
    return ids


def test_events_filters_show_converted_and_profile_less_events(client: TestClient) -> None:
    ids = _mixed_traffic(client)

    converted = stored_events(client, converted="true")
    not_converted = stored_events(client, converted="false", profile_less="true")
    shop_profile_less = stored_events(client, profile_less="true", source_id="shop")

    assert {e["id"] for e in converted} == set(ids["converted"])
    assert all(e["converted_at"] and e["profile_id"] for e in converted)
    unconverted_ids = {e["id"] for e in not_converted if e["source_id"] != "system"}
    assert unconverted_ids == set(ids["unconverted"])
    assert len(shop_profile_less) == 3
    assert stored_events(client, profile_less="false") == []


def test_converted_false_lists_only_profile_less_events_still_waiting(
    client: TestClient,
) -> None:
    ids = _mixed_traffic(client)
    create_source(client, id="web", kind="tracker")
    track(client, {"source": {"id": "web"}, "events": [{"type": "view"}]})

    waiting = stored_events(client, converted="false", source_id=["shop", "forms", "web"])

    assert {e["id"] for e in waiting} == set(ids["unconverted"])


def test_converted_false_leaves_out_system_events(client: TestClient) -> None:
    _mixed_traffic(client)
    assert system_events(client, "profile-created")

    waiting = stored_events(client, converted="false")

    assert all(e["source_id"] != "system" for e in waiting)
    assert all(e["profile_less"] and e["profile_id"] is None for e in waiting)


def test_conversion_insights_by_source_show_rate_and_identifier_kinds(
    client: TestClient,
) -> None:
    _mixed_traffic(client)

    answer = client.get("/api/insights/conversion", params={"by": "source"})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["by"] == "source"
    rows = {row["source"]: row for row in body["rows"]}
    assert rows["shop"] == {
        "source": "shop",
        "profile_less": 3,
        "converted": 2,
        "rate": round(2 / 3, 4),
        "by_kind": {"email": 2},
    }
    assert rows["forms"] == {
        "source": "forms",
        "profile_less": 2,
        "converted": 1,
        "rate": 0.5,
        "by_kind": {"phone": 1},
    }
    assert rows["system"]["converted"] == 0


def test_conversion_insights_by_type_filtered_to_a_source(client: TestClient) -> None:
    _mixed_traffic(client)

    answer = client.get(
        "/api/insights/conversion", params={"by": "type", "source_id": ["shop", "forms"]}
    )

    assert answer.status_code == 200, answer.text
    rows = {row["type"]: row for row in answer.json()["rows"]}
    assert set(rows) == {"order", "lead"}
    assert rows["order"]["converted"] == 2
    assert rows["order"]["profile_less"] == 3
    assert rows["lead"]["by_kind"] == {"phone": 1}
    assert rows["lead"]["rate"] == 0.5


def test_conversion_insights_refuse_an_unknown_grouping(client: TestClient) -> None:
    assert_error_shape(client.get("/api/insights/conversion", params={"by": "hour"}), 422)


def test_conversion_data_survives_a_restart(config: Config) -> None:
    with TestClient(EventstitchApp(config)) as first:
        first.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(first, id="hooks", identification=[EMAIL_RULE])
        answer = collect(first, "hooks", BRIEF_EXAMPLE)

    with TestClient(EventstitchApp(config)) as second:
        second.headers["Authorization"] = f"Bearer {API_TOKEN}"
        assert event(second, answer["id"])["converted_by"] == "email:a@a.com"
        assert owner(second, "email:a@a.com") == answer["profile_id"]


# -- settings and rule management ----------------------------------------------------------


def _app(tmp_path: Path, **overrides: object) -> TestClient:
    config = make_config(tmp_path / "data", **overrides)
    client = TestClient(EventstitchApp(config), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    return client


def test_configured_junk_values_never_create_a_profile(tmp_path: Path) -> None:
    with _app(tmp_path, identity_junk_values=frozenset({"Test@Example.com"})) as client:
        create_source(client, id="hooks", identification=[EMAIL_RULE])

        junk = collect(client, "hooks", {"email": "test@example.com"})
        real = collect(client, "hooks", {"email": "real@example.com"})

        assert junk["profile_id"] is None
        assert real["profile_id"] is not None


def test_default_region_setting_lets_national_phone_numbers_identify(tmp_path: Path) -> None:
    rules = [{"path": "phone", "kind": "phone", "create_profile": True}]
    with _app(tmp_path, phone_default_region="PL") as client:
        create_source(client, id="calls", identification=rules)

        national = collect(client, "calls", {"phone": "601 234 567"})
        international = collect(client, "calls", {"phone": "+48601234567"})

        assert national["profile_id"] is not None
        assert international["profile_id"] == national["profile_id"]
        assert owner(client, "phone:601234567") == national["profile_id"]


def test_national_phone_numbers_do_not_identify_without_a_default_region(
    client: TestClient,
) -> None:
    rules = [{"path": "phone", "kind": "phone", "create_profile": True}]
    create_source(client, id="calls", identification=rules)

    answer = collect(client, "calls", {"phone": "601 234 567"})

    assert answer["profile_id"] is None
    assert system_events(client, "profile-created") == []


def test_shared_kind_becomes_a_trait_and_links_nobody(tmp_path: Path) -> None:
    rules = [EMAIL_RULE, {"path": "office", "kind": "office_phone", "create_profile": True}]
    with _app(tmp_path, identity_shared_kinds=frozenset({"office_phone"})) as client:
        create_source(client, id="hooks", identification=rules)

        ann = collect(client, "hooks", {"email": "ann@a.com", "office": "+48221234567"})
        bob = collect(client, "hooks", {"email": "bob@a.com", "office": "+48221234567"})
        desk = collect(client, "hooks", {"office": "+48221234567"})

        assert ann["profile_id"] != bob["profile_id"]
        assert desk["profile_id"] is None
        body = profile(client, ann["profile_id"])
        assert identifiers(body) == {"email:ann@a.com"}
        assert body["traits"] == {"office_phone": "+48221234567"}


def test_cli_identify_adds_a_rule_that_converts_the_next_event(
    client: TestClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_source(client, id="hooks")

    source = cli_json(
        monkeypatch,
        config,
        "sources",
        "identify",
        "hooks",
        "--path",
        "customer.email",
        "--kind",
        "email",
        "--create-profile",
    )

    assert source["identification"] == [
        {"path": "customer.email", "kind": "email", "create_profile": True, "event_types": []}
    ]
    answer = collect(client, "hooks", {"customer": {"email": "a@a.com"}})
    assert answer["profile_id"] is not None


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "email", "kind": "E-mail"},
        {"path": "", "kind": "email"},
        {"path": "a..b", "kind": "email"},
        {"path": "email", "kind": "email", "event_types": ["Page View"]},
        {"path": "email", "kind": "email", "unknown": True},
    ],
    ids=["bad-kind", "empty-path", "empty-path-part", "bad-event-type", "unknown-field"],
)
def test_bad_rules_are_refused_and_the_source_keeps_its_rules(
    client: TestClient, rule: dict[str, object]
) -> None:
    create_source(client, id="hooks", identification=[EMAIL_RULE])

    answer = client.patch("/api/sources/hooks", json={"identification": [rule]})

    body = assert_error_shape(answer, 422)
    assert body["errors"][0]["field"].startswith("body.identification")
    assert client.get("/api/sources/hooks").json()["identification"] == [
        {**EMAIL_RULE, "event_types": []}
    ]


# -- a rule's path holding a list ------------------------------------------------------------


def test_a_list_of_different_emails_merges_nobody_and_says_why_on_the_event(
    client: TestClient,
) -> None:
    """A mail to two recipients names two people: linking them through the one event
    would make them one profile."""
    create_source(
        client,
        id="mailer",
        identification=[{"path": "recipients", "kind": "email", "create_profile": True}],
    )
    alex = collect(client, "mailer", {"recipients": ["alex@x.com"]})
    bea = collect(client, "mailer", {"recipients": ["bea@y.com"]})
    both = collect(client, "mailer", {"recipients": ["alex@x.com", "Bea@y.com"]})

    assert alex["profile_id"]
    assert bea["profile_id"]
    assert alex["profile_id"] != bea["profile_id"]
    assert both["profile_id"] is None
    assert identifiers(profile(client, alex["profile_id"])) == {"email:alex@x.com"}
    assert identifiers(profile(client, bea["profile_id"])) == {"email:bea@y.com"}
    assert event(client, both["id"])["context"]["identity_skipped"] == [
        {"path": "recipients", "reason": "several_values"}
    ]
    metrics = client.get("/metrics").text
    assert 'eventstitch_identity_rules_skipped_total{reason="several_values"}' in metrics


def test_a_list_repeating_one_email_still_identifies_its_person(client: TestClient) -> None:
    create_source(
        client,
        id="mailer",
        identification=[{"path": "to", "kind": "email", "create_profile": True}],
    )
    answer = collect(client, "mailer", {"to": ["alex@x.com", "ALEX@x.com", None]})
    assert answer["profile_id"] is not None
    assert identifiers(profile(client, answer["profile_id"])) == {"email:alex@x.com"}
    assert "identity_skipped" not in event(client, answer["id"])["context"]


def test_a_backfill_merges_nobody_from_a_list_either(client: TestClient) -> None:
    create_source(client, id="mailer")
    first = collect(client, "mailer", {"to": "alex@x.com"})
    both = collect(client, "mailer", {"to": ["alex@x.com", "bea@y.com"]})
    set_rules(
        client, "mailer", identification=[{"path": "to", "kind": "email", "create_profile": True}]
    )
    bea = collect(client, "mailer", {"to": "bea@y.com"})
    backfill_in_app(client)

    alex = owner(client, "email:alex@x.com")
    assert alex is not None
    assert alex != bea["profile_id"]
    assert event(client, first["id"])["profile_id"] == alex
    assert event(client, both["id"])["profile_id"] is None
