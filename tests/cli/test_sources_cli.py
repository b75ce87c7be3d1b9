"""`eventstitch sources`: the same source management as `/api/sources`, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.cli.main import cli
from tests.cli.conftest import fails, ok, ok_json
from tests.conftest import assert_error_shape

SOURCE_FIELDS = {
    "id",
    "name",
    "kind",
    "preset",
    "enabled",
    "description",
    "tags",
    "identification",
    "traits",
    "delivery_id_path",
    "signature",
    "rate_limit",
    "shaping",
    "write_key",
    "previous_write_key_valid_until",
    "created_at",
    "updated_at",
}


def test_add_answers_the_new_source_as_json(data_dir: Path) -> None:
    added = ok_json(
        "sources", "add", "--name", "Shop", "--id", "shop", "--tag", "eu", "--tag", "b2b",
        "--description", "orders", "--kind", "tracker",
    )  # fmt: skip
    assert set(added) == SOURCE_FIELDS
    assert added["id"] == "shop"
    assert added["name"] == "Shop"
    assert added["kind"] == "tracker"
    assert added["enabled"] is True
    assert added["tags"] == ["eu", "b2b"]
    assert added["description"] == "orders"
    assert ok_json("sources", "show", "shop") == added


def test_create_with_a_preset_fills_the_senders_shaping_signature_and_rules(
    data_dir: Path,
) -> None:
    secret = "sendgrid-token-0123456789"
    made = ok_json("sources", "create", "--id", "mail", "--preset", "sendgrid", "--secret", secret)
    assert made["preset"] == "sendgrid"
    assert made["name"] == "SendGrid"
    assert made["shaping"]["split"] == "$"
    assert made["shaping"]["delivery_id_from"] == "sg_event_id"
    assert made["signature"]["preset"] == "token"
    assert secret not in json.dumps(made)
    assert made["identification"][0]["path"] == "email"
    refused = fails("sources", "create", "--preset", "github", code=2)
    assert "signature" in refused
    unsigned = ok_json("sources", "create", "--preset", "github", "--unsigned")
    assert unsigned["signature"] is None
    assert unsigned["preset"] == "github"


def test_add_generates_an_id_and_may_create_it_disabled(data_dir: Path) -> None:
    added = ok_json("sources", "add", "--name", "Other", "--disabled")
    assert len(added["id"]) == 36
    assert added["enabled"] is False
    assert added["kind"] == "webhook"


def test_add_shows_a_table_for_people(data_dir: Path) -> None:
    shown = ok("sources", "add", "--name", "Shop", "--id", "shop")
    for word in ("field", "value", "id", "shop", "name", "Shop", "webhook"):
        assert word in shown


def test_list_as_json_and_as_a_table(data_dir: Path) -> None:
    ok("sources", "add", "--name", "Shop", "--id", "shop", "--tag", "eu")
    ok("sources", "add", "--name", "Forms", "--id", "forms", "--disabled")
    listed = ok_json("sources", "list")
    assert set(listed) == {"sources"}
    by_id = {s["id"]: s for s in listed["sources"]}
    assert set(by_id) == {"system", "shop", "forms"}
    assert by_id["shop"]["tags"] == ["eu"]
    assert by_id["forms"]["enabled"] is False
    table = ok("sources", "list")
    for word in ("id", "name", "kind", "enabled", "shop", "Shop", "forms", "Forms", "eu", "no"):
        assert word in table


def test_show_as_a_table(data_dir: Path) -> None:
    ok("sources", "add", "--name", "Shop", "--id", "shop", "--description", "orders")
    table = ok("sources", "show", "shop")
    for word in ("description", "orders", "enabled", "True", "created_at"):
        assert word in table


def test_disable_and_enable_with_and_without_json(data_dir: Path) -> None:
    added = ok_json("sources", "add", "--name", "Shop", "--id", "shop", "--tag", "eu")
    disabled = ok_json("sources", "disable", "shop")
    assert disabled["enabled"] is False
    assert {k: v for k, v in disabled.items() if k not in ("enabled", "updated_at")} == {
        k: v for k, v in added.items() if k not in ("enabled", "updated_at")
    }
    assert "True" in ok("sources", "enable", "shop")
    assert ok_json("sources", "show", "shop")["enabled"] is True
    assert "False" in ok("sources", "disable", "shop")
    assert ok_json("sources", "show", "shop")["enabled"] is False
    assert ok_json("sources", "enable", "shop")["enabled"] is True


def test_remove_then_the_source_is_gone(data_dir: Path) -> None:
    ok("sources", "add", "--name", "Shop", "--id", "shop")
    assert "removed source shop" in ok("sources", "remove", "shop")
    assert "shop" not in {s["id"] for s in ok_json("sources", "list")["sources"]}
    assert "source 'shop' not found" in fails("sources", "show", "shop")


@pytest.mark.parametrize("command", ["show", "enable", "disable", "remove"])
def test_an_unknown_source_exits_1_with_a_message(data_dir: Path, command: str) -> None:
    error = fails("sources", command, "nowhere")
    assert error.startswith("error: ")
    assert "source 'nowhere' not found" in error


def test_a_duplicate_id_exits_1_and_keeps_the_first(data_dir: Path) -> None:
    first = ok_json("sources", "add", "--name", "First", "--id", "shop")
    error = fails("sources", "add", "--name", "Second", "--id", "shop")
    assert "source 'shop' exists already" in error
    assert ok_json("sources", "show", "shop") == first


def test_the_system_source_cannot_be_changed(data_dir: Path) -> None:
    assert "read-only" in fails("sources", "disable", "system")
    assert "read-only" in fails("sources", "remove", "system")


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "x", "--id", "bad id!"],
        ["--name", ""],
        ["--name", "x", "--kind", "system"],
        ["--id", "no-name"],
    ],
)
def test_bad_input_is_a_usage_error_that_creates_nothing(data_dir: Path, args: list[str]) -> None:
    error = fails("sources", "add", *args, code=2)
    assert "Error" in error
    assert [s["id"] for s in ok_json("sources", "list")["sources"]] == ["system"]


def test_the_cli_and_http_manage_the_same_sources(data_dir: Path, http: TestClient) -> None:
    ok("sources", "add", "--name", "Shop", "--id", "shop")
    assert http.get("/api/sources/shop").json() == ok_json("sources", "show", "shop")
    assert http.post("/collect/order/shop", json={"n": 1}).status_code == 200
    ok("sources", "disable", "shop")
    # The writer re-checks the source inside the commit: refused at once, whatever is cached.
    assert_error_shape(http.post("/collect/order/shop", json={"n": 2}), 403)
    ok("sources", "remove", "shop")
    assert_error_shape(http.post("/collect/order/shop", json={"n": 3}), 404)
    http.post("/api/sources", json={"id": "made-over-http", "name": "H"})
    assert ok_json("sources", "show", "made-over-http")["name"] == "H"


SECRET = "It's a Secret to Everybody"


def test_sign_shows_hints_only_and_unsign_removes_the_rule(
    data_dir: Path, http: TestClient
) -> None:
    ok("sources", "add", "--name", "Hub", "--id", "gh")
    signed = ok_json("sources", "sign", "gh", "--preset", "github", "--secret", SECRET)
    assert signed["signature"]["secret_hints"] == ["...body"]
    assert SECRET not in ok("sources", "show", "gh")
    refused = http.post("/collect/push/gh", content=b"Hello, World!")
    assert_error_shape(refused, 401)
    digest = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    accepted = http.post(
        "/collect/push/gh",
        content=b"Hello, World!",
        headers={"X-Hub-Signature-256": f"sha256={digest}", "content-type": "text/plain"},
    )
    assert accepted.status_code == 400  # past the signature: the body is not JSON
    assert "malformed JSON" in accepted.json()["error"]
    assert ok_json("sources", "unsign", "gh")["signature"] is None


def test_sign_reads_secrets_from_stdin_and_refuses_a_bad_rule(data_dir: Path) -> None:
    ok("sources", "add", "--name", "Gen", "--id", "gen")
    result = CliRunner().invoke(
        cli,
        ["sources", "sign", "gen", "--preset", "hmac", "--header", "X-Sig", "--algorithm",
         "sha512", "--encoding", "base64", "--prefix", "sha512=", "--secrets-from-stdin",
         "--json"],
        input="first-secret-0123456789\nsecond-secret-0123456789\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["signature"]
    assert shown["secret_count"] == 2
    assert (shown["header"], shown["algorithm"], shown["encoding"]) == ("x-sig", "sha512", "base64")
    refused = fails(
        "sources", "sign", "gen", "--preset", "github", "--secret", "short-secret", code=2
    )
    assert "at least 16 characters" in refused
    assert "short-secret" not in refused  # a refused secret is not echoed back


def test_limit_sets_unlimited_and_default(data_dir: Path) -> None:
    ok("sources", "add", "--name", "Shop", "--id", "shop")
    limited = ok_json("sources", "limit", "shop", "--per-second", "50", "--burst", "100")
    assert limited["rate_limit"] == {"per_second": 50.0, "burst": 100}
    assert ok_json("sources", "limit", "shop", "--unlimited")["rate_limit"]["per_second"] == 0
    assert ok_json("sources", "limit", "shop", "--default")["rate_limit"] is None
    assert "one of" in fails("sources", "limit", "shop", code=2)
    assert "one of" in fails("sources", "limit", "shop", "--unlimited", "--default", code=2)


def test_shape_sets_and_clears_the_shaping(data_dir: Path) -> None:
    ok("sources", "add", "--name", "Grid", "--id", "grid")
    shaped = ok_json(
        "sources", "shape", "grid", "--split", "$", "--event-type-from", "event",
        "--delivery-id-from", "sg_event_id", "--redact", "ip", "--redact", "useragent",
    )  # fmt: skip
    assert shaped["shaping"]["split"] == "$"
    assert shaped["shaping"]["redact"] == ["ip", "useragent"]
    assert "event_type_from" in fails(
        "sources", "shape", "grid", "--event-type-from", "a..b", code=2
    )
    assert ok_json("sources", "shape", "grid", "--clear")["shaping"] is None
