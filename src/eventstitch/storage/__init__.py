"""Storage behind one protocol; `open_storage` picks the backend from the URL's scheme."""

from __future__ import annotations

from eventstitch.config import Config, masked_url
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.shared.backend import store_settings

BACKENDS = ("sqlite", "postgres")
"""Every backend, by the name of its package; each passes the contract suite."""
_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}


def backend_of(url: str) -> str | None:
    """The backend package a database URL names ("sqlite", "postgres"), None if unknown."""
    return _SCHEMES.get(url.split(":", 1)[0])


def open_storage(config: Config) -> Storage:
    """The backend for `config`'s database URL, not yet started."""
    url = config.resolved_database_url
    settings = store_settings(config)
    backend = backend_of(url)
    if backend == "sqlite":
        from eventstitch.storage.sqlite.backend import SqliteStorage
        from eventstitch.storage.sqlite.db import path_from_url

        return SqliteStorage(
            path_from_url(url),
            settings=settings,
            synchronous=config.sqlite_synchronous,
            writer_socket=config.sqlite_writer_socket or None,
        )
    if backend == "postgres":
        try:
            from eventstitch.storage.postgres.backend import PostgresStorage
        except ImportError as exc:  # psycopg is an optional dependency
            raise ValueError(
                f"a PostgreSQL URL needs the driver: pip install 'eventstitch[postgres]' ({exc})"
            ) from None

        return PostgresStorage(url, settings=settings)
    raise ValueError(  # the whole text may be a key=value string holding a password
        f"unsupported database URL {masked_url(url)[:80]!r};"
        " use sqlite:///path or postgresql://user@host/database"
    )
