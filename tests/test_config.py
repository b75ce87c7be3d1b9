"""Settings: one table drives the Config type, the docs and --help; bad values stop at start."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from eventstitch.cli.main import cli
from eventstitch.config import (
    HIDDEN_URL,
    SETTINGS,
    Config,
    ConfigError,
    load_config,
    masked_url,
    settings_markdown,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_config_field_is_a_documented_setting() -> None:
    assert {f.name for f in fields(Config)} == {s.name for s in SETTINGS}
    for setting in SETTINGS:
        assert setting.help.strip(), f"{setting.env_name} has no help text"


def test_configuration_doc_is_generated_from_the_settings_table() -> None:
    assert DOCS.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/configuration.md is stale: run `eventstitch config docs > docs/configuration.md`"
    )


def test_serve_help_lists_every_setting() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for setting in SETTINGS:
        assert setting.env_name in result.output


def test_defaults_serve_the_embedded_database_on_port_8686() -> None:
    config = load_config({})
    assert config.port == 8686
    assert config.max_body_bytes == 1024 * 1024
    assert config.resolved_database_url == "sqlite:///data/eventstitch.db"


def test_environment_values_are_typed() -> None:
    config = load_config({"EVENTSTITCH_PORT": "9000", "EVENTSTITCH_SQLITE_SYNCHRONOUS": "normal"})
    assert config.port == 9000
    assert config.sqlite_synchronous == "NORMAL"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVENTSTITCH_PORT", "eighty"),
        ("EVENTSTITCH_PORT", "70000"),
        ("EVENTSTITCH_MAX_BODY_BYTES", "0"),
        ("EVENTSTITCH_SQLITE_SYNCHRONOUS", "OFF"),
        ("EVENTSTITCH_BATCH_SIZE", "100000"),
        ("EVENTSTITCH_SOURCE_CACHE_SECONDS", "-1"),
        ("EVENTSTITCH_RATE_LIMIT_PER_SECOND", "1e-300"),
        ("EVENTSTITCH_RATE_LIMIT_PER_SECOND", "0.0009"),
        ("EVENTSTITCH_RATE_LIMIT_PER_SECOND", "1000001"),
        ("EVENTSTITCH_RATE_LIMIT_PER_SECOND", "nan"),
        ("EVENTSTITCH_RATE_LIMIT_BURST", "1000001"),
    ],
)
def test_bad_value_stops_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})


def test_serve_refuses_to_start_on_a_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTITCH_PORT", "not-a-port")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code != 0
    assert "EVENTSTITCH_PORT" in result.output


_SAFE_TEXT = (
    "postgresql://user@127.0.0.1:5432/test user=user password=*** dbname=test "
    "host=127.0.0.1 port=5432 " + HIDDEN_URL
)


def _url_forms(password: str) -> list[str]:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        f"postgresql://user:{quote(password, safe='')}@127.0.0.1:5432/test",
        f"postgresql://user:{password}@127.0.0.1:5432/test",  # not escaped, as people write it
        f"postgres://user@127.0.0.1/test?password={quote(password, safe='')}&sslmode=disable",
        f"host=127.0.0.1 password='{escaped}' dbname=test",
        f"host=127.0.0.1 user=user password='{escaped}'",
    ]


@given(password=st.text(st.characters(exclude_categories=["Cs"]), min_size=3, max_size=40))
def test_masked_url_never_shows_the_password(password: str) -> None:
    assume(password.strip() and password not in _SAFE_TEXT)
    for url in _url_forms(password):
        shown = masked_url(url)
        assert password not in shown, (url, shown)
        assert quote(password, safe="") not in shown, (url, shown)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:pa#ss@127.0.0.1/test",
        "postgresql://user:pa?ss@127.0.0.1/test",
        "postgresql://user:pa/ss@127.0.0.1/test",
        "postgresql://user:p@ss@127.0.0.1/test",
        "postgresql://user:p:ss@127.0.0.1/test",
        "postgresql://user:p%20ss@127.0.0.1/test",
        "host=127.0.0.1 password='p ss'",
        "host=127.0.0.1 password=pss",
        "hostaddr=127.0.0.1 password=pss unknown=x",
    ],
)
def test_masked_url_hides_each_awkward_password(url: str) -> None:
    shown = masked_url(url)
    for part in ("pa#ss", "pa?ss", "pa/ss", "p@ss", "p:ss", "p ss", "p%20ss", "pss"):
        assert part not in shown


def test_masked_url_leaves_what_has_no_password_as_written() -> None:
    for url in ("sqlite:///data/eventstitch.db", "postgresql://postgres@127.0.0.1:5432/test"):
        assert masked_url(url) == url
    assert masked_url("postgresql://u:secret-pw@h/db") == "user=u password=*** dbname=db host=h"


def test_config_show_hides_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", "postgresql://u:s3cr%23t@127.0.0.1/db")
    shown = CliRunner().invoke(cli, ["config", "show"])
    assert shown.exit_code == 0, shown.output
    assert "s3cr" not in shown.output
    assert "password=***" in shown.output
