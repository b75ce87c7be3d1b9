"""PostgreSQL for tests: is it reachable, and a fresh empty schema per test, dropped afterwards.

The server is `EVENTSTITCH_TEST_POSTGRES_URL` (default: postgres at 127.0.0.1:5432, database
`test`). When it cannot be reached, or psycopg is not installed, tests that need it are skipped
with the reason, except under `CI=true`, where they fail: CI must never pass by skipping.

Each fresh schema is reached through the database URL alone (`options=-csearch_path=...`), so
the URL can be handed to anything that takes `EVENTSTITCH_DATABASE_URL`: a store in the test
process, or server processes (tests/storage/test_postgres_processes.py).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA_PREFIX = "eventstitch_test_"


def backend_params(backends: tuple[str, ...]) -> list[Any]:
    """Fixture params, one per backend, with `postgres` marking the PostgreSQL one: a test that
    runs on it needs the server, and `-m "not postgres"` leaves it out."""
    return [
        pytest.param(name, marks=pytest.mark.postgres) if name == "postgres" else name
        for name in backends
    ]


def server_url() -> str:
    """The URL of the PostgreSQL database the tests create their schemas in."""
    return os.environ.get("EVENTSTITCH_TEST_POSTGRES_URL") or DEFAULT_URL


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@functools.cache
def unavailable_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can (asked once per run)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(server_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {_redacted(server_url())} is not reachable: {first_line}"
    return None


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unavailable; fail it instead under CI=true."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true, so PostgreSQL tests must run, but {reason}", pytrace=False)
    pytest.skip(reason)


def with_search_path(url: str, schema: str) -> str:
    """`url` with the schema as its search_path (added to any `options` already there)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join([v for k, v in query if k == "options"] + [f"-csearch_path={schema}"])
    query = [(k, v) for k, v in query if k != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextmanager
def fresh_database_url() -> Iterator[str]:
    """A database URL whose search_path is a new empty schema; the schema and everything in it
    is dropped afterwards. Skips (or fails under CI) when PostgreSQL is unavailable."""
    require_postgres()
    import psycopg
    from psycopg import sql

    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(server_url(), schema)
    finally:
        drop_schema(schema)


def drop_schema(schema: str) -> None:
    """Drop a test schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '30s'")  # a leftover session must not hang the suite
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
