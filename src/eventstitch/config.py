"""Typed settings read once from the environment, declared as data.

The `SETTINGS` table is the single source of truth: `Config` is built from it, `serve --help`
prints it, and `docs/configuration.md` is generated from it (a test keeps the two equal).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

PREFIX = "EVENTSTITCH_"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; raised at start, never later."""


@dataclass(frozen=True)
class Setting:
    """One environment setting: its name without the prefix, how to read it, and why it exists."""

    name: str
    parse: Callable[[str], Any]
    default: str
    help: str

    @property
    def env_name(self) -> str:
        return PREFIX + self.name.upper()


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


MIN_RATE_PER_SECOND = 0.001
"""The slowest rate limit a source may have (one request in 1000 s); 0 means no limit."""
MAX_RATE_PER_SECOND = 1_000_000.0
MAX_RATE_BURST = 1_000_000
MAX_RETRY_AFTER_SECONDS = 3600
"""The longest Retry-After a 429 names: a client is never told to go away for longer."""


def rate_problem(per_second: float) -> str | None:
    """Why a rate limit cannot be used, or None: a tiny rate would ask clients to wait for
    ages (and overflows the arithmetic), so it is 0 (no limit) or within the bounds."""
    if per_second == 0 or MIN_RATE_PER_SECOND <= per_second <= MAX_RATE_PER_SECOND:
        return None
    return f"must be 0 (no limit) or between {MIN_RATE_PER_SECOND:g} and {MAX_RATE_PER_SECOND:.0f}"


def _rate_per_second(raw: str) -> float:
    value = float(raw)
    problem = rate_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _rate_burst(raw: str) -> int:
    value = _non_negative_int(raw)
    if value > MAX_RATE_BURST:
        raise ValueError(f"must be at most {MAX_RATE_BURST}")
    return value


def _batch_size(raw: str) -> int:
    value = _positive_int(raw)
    # A batch is one statement: up to 12 bound values per event (linked inserts), and SQLite
    # as commonly built allows 32766 per statement.
    if value > 2700:
        raise ValueError("must be at most 2700")
    return value


def _split_events(raw: str) -> int:
    value = _positive_int(raw)
    if value > 2700:  # a split delivery is committed in one batch, bounded like `batch_size`
        raise ValueError("must be at most 2700")
    return value


def _nesting_depth(raw: str) -> int:
    value = _positive_int(raw)
    if value > 200:  # orjson writes at most 254 levels; stay well inside what can be stored
        raise ValueError("must be at most 200")
    return value


MAX_WRITE_KEY_GRACE_SECONDS = 30 * 86400
"""The longest a rotated write key stays valid: a forgotten old key must expire."""


def _grace_seconds(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= MAX_WRITE_KEY_GRACE_SECONDS:
        raise ValueError(f"must be between 0 and {MAX_WRITE_KEY_GRACE_SECONDS}")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _text(raw: str) -> str:
    return raw.strip()


def _names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError("must be true or false")
    return value in ("true", "1", "yes", "on")


def _region(raw: str) -> str:
    value = raw.strip().upper()
    if value and not (len(value) == 2 and value.isalpha()):
        raise ValueError("must be a two-letter region code such as US or DE, or empty")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir", Path, "data", "Folder for the embedded database and the generated API token."
    ),
    Setting(
        "database_url",
        _text,
        "",
        "Where events are stored. Empty means `sqlite:///<data_dir>/eventstitch.db`. "
        "`sqlite:///path` selects the embedded backend, `postgresql://user@host/db` the server "
        "backend (install the `postgres` extra).",
    ),
    Setting(
        "api_token",
        _text,
        "",
        "Bearer token for every `/api` route. Empty: `serve` creates one in the data folder on "
        "first start and prints it once.",
    ),
    Setting("host", _text, "127.0.0.1", "Address `serve` binds to."),
    Setting("port", _port, "8686", "Port `serve` listens on."),
    Setting("workers", _positive_int, "1", "Collector processes `serve` starts on one port."),
    Setting(
        "max_body_bytes", _positive_int, "1048576", "Largest request body accepted (413 above)."
    ),
    Setting(
        "max_url_bytes",
        _positive_int,
        "16384",
        "Longest request target (path and query string) in bytes; longer: 414 and the "
        "connection is closed, before the rest of the request is read.",
    ),
    Setting(
        "max_header_bytes",
        _positive_int,
        "32768",
        "Most bytes of request header names and values together, chunked trailers included; "
        "more: 431 and the connection is closed, before the rest of the head is read.",
    ),
    Setting(
        "max_header_count",
        _positive_int,
        "100",
        "Most request header fields, chunked trailers included; more: 431 and the connection "
        "is closed.",
    ),
    Setting(
        "body_timeout_seconds",
        _positive_float,
        "30",
        "Longest time a request body may take to arrive, counted from the end of its headers, "
        "on every route; slower: 408 and the connection is closed, nothing stored.",
    ),
    Setting(
        "max_nesting_depth",
        _nesting_depth,
        "32",
        "Deepest nesting of objects and arrays accepted in a body (400 above; 200 at most).",
    ),
    Setting(
        "max_split_events",
        _split_events,
        "500",
        "Most events one delivery to a source that splits arrays may make (413 above; 2700 at "
        "most).",
    ),
    Setting(
        "queue_size",
        _positive_int,
        "10000",
        "Events waiting for the writer at most; when full, ingest answers 503 with Retry-After.",
    ),
    Setting(
        "batch_size",
        _batch_size,
        "1000",
        "Most events committed in one transaction (2700 at most).",
    ),
    Setting(
        "sqlite_synchronous",
        _choice("FULL", "NORMAL"),
        "FULL",
        "SQLite durability. FULL survives power loss; NORMAL survives a process crash but may "
        "lose the last commits on power loss, for more speed.",
    ),
    Setting("retry_after_seconds", _positive_int, "1", "Retry-After sent with 503 answers."),
    Setting(
        "cors_origins",
        _names,
        "",
        "Browser origins allowed to call /collect and /track (comma-separated, or *); empty: "
        "no CORS headers. /api never answers cross-origin requests.",
    ),
    Setting(
        "track_max_events", _positive_int, "500", "Most events one /track call may carry (422)."
    ),
    Setting(
        "track_max_stored_bytes",
        _positive_int,
        "4194304",
        "Most bytes one /track call may store, counted over all its events: each event carries "
        "the call's context, properties and headers (413 above; nothing stored).",
    ),
    Setting(
        "write_key_grace_seconds",
        _grace_seconds,
        "86400",
        "After a tracker source's write key is rotated, how long the previous key still "
        f"works (a rotation may name its own; at most {MAX_WRITE_KEY_GRACE_SECONDS}).",
    ),
    Setting(
        "sdk_max_message_bytes",
        _positive_int,
        "32768",
        "Most bytes of one message on the SDK routes (/v1/*, /batch/, /capture/, ...), as "
        "JSON: a bigger message is kept in the quarantine, the rest of its batch stored.",
    ),
    Setting(
        "sdk_max_batch_bytes",
        _positive_int,
        "512000",
        "Most bytes of one SDK-route request body once decompressed (413 in the SDK's error "
        "shape above; nothing stored). Segment documents 500 KB.",
    ),
    Setting(
        "sdk_max_batch_messages",
        _positive_int,
        "2500",
        "Most messages in one SDK-route batch (413 above; nothing stored).",
    ),
    Setting(
        "idempotency_window_seconds",
        _non_negative_int,
        "86400",
        "How long a delivery id (Idempotency-Key, X-GitHub-Delivery, ... or the source's "
        "delivery_id_path) is remembered per source: a retry within it is stored once. 0: off.",
    ),
    Setting(
        "rejections_max_rows",
        _positive_int,
        "10000",
        "Refused ingest requests kept for inspection and replay at most; the oldest go first.",
    ),
    Setting(
        "rejections_max_bytes",
        _positive_int,
        "268435456",
        "Bytes of refused requests kept at most (each row's stored size); the oldest go first.",
    ),
    Setting(
        "rejections_max_path_chars",
        _positive_int,
        "1024",
        "Most characters of a refused request's path and of its query string kept.",
    ),
    Setting(
        "rejections_max_age_seconds",
        _positive_int,
        "604800",
        "How long a refused request is kept (default 7 days).",
    ),
    Setting(
        "rejections_max_body_bytes",
        _non_negative_int,
        "65536",
        "Most bytes of a refused request's body kept (the original size is recorded, and a "
        "truncated body cannot be replayed); 0 keeps no bodies.",
    ),
    Setting(
        "rejections_buffer_size",
        _positive_int,
        "1000",
        "Refused requests waiting in memory to be written at most; beyond it (or beyond "
        "EVENTSTITCH_REJECTIONS_BUFFER_BYTES) they are dropped and counted.",
    ),
    Setting(
        "rejections_buffer_bytes",
        _positive_int,
        "8388608",
        "Bytes (bodies, headers, query strings) of refused requests waiting in memory at most.",
    ),
    Setting(
        "rejections_flush_ms",
        _positive_int,
        "250",
        "How long refused requests gather in memory before one write stores them together.",
    ),
    Setting(
        "source_cache_seconds",
        _non_negative_float,
        "1.0",
        "How long a process trusts its cached copy of a source before re-reading it. The writer "
        "re-checks every source inside the commit, so a disabled source never gets an event in.",
    ),
    Setting(
        "source_cache_max_entries",
        _positive_int,
        "10000",
        "Sources, unknown source ids and rate-limit buckets each held in memory at most; the "
        "least recently used go first.",
    ),
    Setting(
        "source_cache_max_bytes",
        _positive_int,
        "8388608",
        "Bytes the copies of sources, and the unknown source ids, each hold in memory at most.",
    ),
    Setting(
        "rate_limit_per_second",
        _rate_per_second,
        "0",
        "Requests per second each source may send to /collect or /track, unless the source has "
        "its own rate_limit; over it: 429 with Retry-After. 0: no limit; else 0.001 to 1000000. "
        "Each process keeps its "
        "own buckets, so with N workers a source may get up to N times this.",
    ),
    Setting(
        "rate_limit_burst",
        _rate_burst,
        "0",
        "Requests a source may send at once before the rate applies, at most 1000000. 0: the "
        "rate rounded up (at least 1).",
    ),
    Setting(
        "query_default_limit", _positive_int, "50", "Events per page when `limit` is not given."
    ),
    Setting("query_max_limit", _positive_int, "1000", "Largest `limit` accepted on `/api/events`."),
    Setting("sources_default_limit", _positive_int, "100", "Sources per page of /api/sources."),
    Setting("sources_max_limit", _positive_int, "500", "Largest `limit` accepted on /api/sources."),
    Setting(
        "query_timeout_ms",
        _positive_int,
        "10000",
        "Longest a single events or insights query may run before it is stopped (400).",
    ),
    Setting(
        "max_insight_buckets",
        _positive_int,
        "10000",
        "Most rows an insights answer may hold (time buckets or distinct values); on "
        "/api/insights, the most time intervals of a series (400 past it).",
    ),
    Setting(
        "max_insight_groups",
        _positive_int,
        "10000",
        "Most groups /api/insights gathers and returns; past it the answer says truncated.",
    ),
    Setting(
        "max_insight_values",
        _positive_int,
        "2000000",
        "Most values /api/insights holds in memory for one answer (numbers for sum, avg, "
        "percentiles; distinct values); past it the query is refused (400).",
    ),
    Setting("log_level", _text, "info", "Log level of the server: debug, info, warning, error."),
    Setting(
        "identity_single_valued_kinds",
        _names,
        "user_id",
        "Identifier kinds a person has one value of (comma-separated). A profile never takes a "
        "second value of these, and two profiles holding different values are never merged.",
    ),
    Setting(
        "identity_shared_kinds",
        _names,
        "",
        "Identifier kinds that do not single out a person, such as a shared office phone "
        "(comma-separated). Rules of these kinds copy the value to a trait and never link.",
    ),
    Setting(
        "identity_junk_values",
        _names,
        "",
        "More values that identify nobody (comma-separated), besides the built-in list in "
        "docs/identity.md.",
    ),
    Setting(
        "phone_default_region",
        _region,
        "",
        "Region for phone numbers written without a country code (e.g. US); empty: such numbers "
        "do not identify.",
    ),
    Setting(
        "system_events",
        _flag,
        "true",
        "Record Eventstitch's own happenings (profiles created or merged, sources changed, "
        "backfills) as events of the read-only `system` source.",
    ),
)


@dataclass(frozen=True)
class Config:
    """The settings in force, typed; built once by `load_config`."""

    data_dir: Path
    database_url: str
    api_token: str
    host: str
    port: int
    workers: int
    max_body_bytes: int
    max_url_bytes: int
    max_header_bytes: int
    max_header_count: int
    body_timeout_seconds: float
    max_nesting_depth: int
    max_split_events: int
    queue_size: int
    batch_size: int
    sqlite_synchronous: str
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


HIDDEN_URL = "(a database URL that could not be read safely; not shown)"
_MASK = "***"


def masked_url(url: str) -> str:
    """The database URL as it may be printed or logged: any PostgreSQL password (URL or
    `key=value` form, escaped or not) replaced by `***`. Read as libpq reads it; when that
    reading and the text disagree about where the password is, nothing of it is shown."""
    if url.startswith("sqlite:") or not url.strip():
        return url  # a file path: nothing secret in it
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError:  # without the driver the URL cannot be used anyway
        return HIDDEN_URL
    try:
        parsed = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception:
        return HIDDEN_URL
    secrets = {k: v for k, v in parsed.items() if "password" in k.lower()}
    _, sep, rest = url.partition("://")
    userinfo = rest.rpartition("@")[0] if sep else ""
    written = unquote(userinfo.partition(":")[2]) if ":" in userinfo else None
    if written is not None and secrets.get("password") != written:
        return HIDDEN_URL  # the text has a password where libpq did not read one
    if not secrets:
        return HIDDEN_URL if "password" in url.lower() else url
    masked = make_conninfo(**{k: _MASK if k in secrets else v for k, v in parsed.items()})
    if any(value and value in masked for value in secrets.values()):
        return HIDDEN_URL
    return masked


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
        "`src/eventstitch/config.py` (`eventstitch config docs`); a test keeps them equal.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(empty)"
        lines.append(f"| `{setting.env_name}` | {default} | {setting.help} |")
    return "\n".join(lines) + "\n"
