"""The `eventstitch` command as a whole: schema migrations, the settings page, help."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstitch import __version__
from tests.cli.conftest import fails, ok

CONFIGURATION_PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_db_migrate_applies_the_schema_once_then_says_up_to_date(data_dir: Path) -> None:
    first = ok("db", "migrate")
    assert first.startswith("applied migrations: [1, ")
    assert ok("db", "migrate") == "schema is up to date\n"
    assert ok("db", "migrate") == "schema is up to date\n"


def test_commands_on_a_fresh_folder_create_the_schema_first(data_dir: Path) -> None:
    assert "system" in ok("sources", "list")
    assert ok("db", "migrate") == "schema is up to date\n"


def test_config_docs_prints_the_configuration_page(data_dir: Path) -> None:
    printed = ok("config", "docs")
    assert printed.startswith("# Configuration\n")
    assert "EVENTSTITCH_DATA_DIR" in printed
    if not CONFIGURATION_PAGE.exists():
        pytest.skip("docs/configuration.md is not written yet")
    assert printed == CONFIGURATION_PAGE.read_text(encoding="utf-8")


def test_config_show_hides_the_token(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTITCH_API_TOKEN", "secret-value-123")
    shown = ok("config", "show")
    assert f"EVENTSTITCH_DATA_DIR={data_dir}" in shown
    assert "EVENTSTITCH_API_TOKEN=(set)" in shown
    assert "secret-value-123" not in shown


def test_a_bad_setting_exits_1_naming_it(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTITCH_QUERY_MAX_LIMIT", "lots")
    error = fails("sources", "list")
    assert "EVENTSTITCH_QUERY_MAX_LIMIT" in error


def test_help_lists_every_command_group(data_dir: Path) -> None:
    shown = ok("--help")
    for command in ("serve", "sources", "events", "insights", "db", "config"):
        assert command in shown
    assert __version__ in ok("--version")
