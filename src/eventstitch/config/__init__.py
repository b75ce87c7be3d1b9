"""Typed settings read once from the environment, declared as data.

The `SETTINGS` table is the single source of truth: `Config` is built from it, `serve --help`
prints it, and `docs/configuration.md` is generated from it (a test keeps the two equal).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventstitch.config.table import SETTINGS
from eventstitch.config.urls import HIDDEN_URL, masked_url
from eventstitch.config.values import (
    MAX_RATE_BURST,
    MAX_RATE_PER_SECOND,
    MAX_RETRY_AFTER_SECONDS,
    MAX_WRITE_KEY_GRACE_SECONDS,
    MIN_RATE_PER_SECOND,
    PREFIX,
    Setting,
    rate_problem,
)

__all__ = [
    "HIDDEN_URL",
    "MAX_RATE_BURST",
    "MAX_RATE_PER_SECOND",
    "MAX_RETRY_AFTER_SECONDS",
    "MAX_WRITE_KEY_GRACE_SECONDS",
    "MIN_RATE_PER_SECOND",
    "PREFIX",
    "SETTINGS",
    "Config",
    "ConfigError",
    "Setting",
    "load_config",
    "masked_url",
    "rate_problem",
    "settings_markdown",
]


class ConfigError(ValueError):
    """A setting has a value that cannot be used; raised at start, never later."""


@dataclass(frozen=True)
class Config:
    """The settings in force, typed; built once by `load_config`."""

    data_dir: Path
    database_url: str
    api_token: str
    api_max_body_bytes: int
    console_session_seconds: int
    console_max_form_bytes: int
    host: str
    port: int
    workers: int
    max_body_bytes: int
    max_url_bytes: int
    max_header_bytes: int
    max_header_count: int
    head_timeout_seconds: float
    max_connections: int
    keep_alive_seconds: int
    body_timeout_seconds: float
    max_nesting_depth: int
    max_split_events: int
    queue_size: int
    batch_size: int
    sqlite_synchronous: str
    sqlite_writer: str
    sqlite_writer_socket: str
    retry_after_seconds: int
    cors_origins: frozenset[str]
    track_max_events: int
    track_max_stored_bytes: int
    write_key_grace_seconds: int
    sdk_max_message_bytes: int
    sdk_max_batch_bytes: int
    sdk_max_batch_messages: int
    idempotency_window_seconds: int
    rejections_max_rows: int
    rejections_max_bytes: int
    rejections_max_path_chars: int
    rejections_max_age_seconds: int
    rejections_max_body_bytes: int
    rejections_buffer_size: int
    rejections_buffer_bytes: int
    rejections_flush_ms: int
    source_cache_seconds: float
    source_cache_max_entries: int
    source_cache_max_bytes: int
    rate_limit_per_second: float
    rate_limit_burst: int
    query_default_limit: int
    query_max_limit: int
    sources_default_limit: int
    sources_max_limit: int
    query_timeout_ms: int
    max_insight_buckets: int
    max_insight_groups: int
    max_insight_values: int
    columnar_memory_mb: int
    columnar_max_paths: int
    columnar_cache_rows: int
    columnar_cache_values_mb: int
    columnar_tail_rows: int
    columnar_spill_mb: int
    columnar_refresh_seconds: int
    columnar_refresh_in: str
    log_level: str
    identity_single_valued_kinds: frozenset[str]
    identity_shared_kinds: frozenset[str]
    identity_junk_values: frozenset[str]
    phone_default_region: str
    system_events: bool

    @property
    def resolved_database_url(self) -> str:
        """The database URL, with the embedded default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'eventstitch.db'}"


def load_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Read every setting from the environment; raise ConfigError naming the bad one."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(setting.env_name, setting.default)
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{setting.env_name}={raw!r}: {exc}") from exc
    by_name = {s.name: s for s in SETTINGS}
    for name, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:  # an override passes the same checks as the environment
                value = by_name[name].parse(str(value))
            except ValueError as exc:
                raise ConfigError(f"{by_name[name].env_name}={value!r}: {exc}") from exc
        values[name] = value
    if values["query_default_limit"] > values["query_max_limit"]:
        raise ConfigError(f"{PREFIX}QUERY_DEFAULT_LIMIT must not exceed {PREFIX}QUERY_MAX_LIMIT")
    if values["sources_default_limit"] > values["sources_max_limit"]:
        raise ConfigError(
            f"{PREFIX}SOURCES_DEFAULT_LIMIT must not exceed {PREFIX}SOURCES_MAX_LIMIT"
        )
    return Config(**values)


def settings_markdown() -> str:
    """The settings table as Markdown: the body of docs/configuration.md."""
    lines = [
        "# Configuration",
        "",
        "Eventstitch reads these environment variables once, at start. A bad value stops it",
        "with a message naming the variable. This page is generated from the settings table in",
        "`src/eventstitch/config/table.py` (`eventstitch config docs`); a test keeps them equal.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(empty)"
        lines.append(f"| `{setting.env_name}` | {default} | {setting.help} |")
    return "\n".join(lines) + "\n"
