"""Storage behind one protocol; `open_storage` picks the backend from the URL's scheme."""

from __future__ import annotations

from eventstitch.config import Config, masked_url
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.shared.backend import StoreSettings

BACKENDS = ("sqlite", "postgres")
"""Every backend, by the name of its package; each passes the contract suite."""
_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}


def open_storage(config: Config) -> Storage:
    """The backend for `config`'s database URL, not yet started."""
    url = config.resolved_database_url
    scheme = url.split(":", 1)[0]
    backend = _SCHEMES.get(scheme)
    settings = StoreSettings(
        queue_size=config.queue_size,
        batch_size=config.batch_size,
        query_timeout_ms=config.query_timeout_ms,
        single_valued=config.identity_single_valued_kinds,
        system_events=config.system_events,
        idempotency_window_ms=config.idempotency_window_seconds * 1000,
    )
    if backend == "sqlite":
        from eventstitch.storage.sqlite.backend import SqliteStorage
        from eventstitch.storage.sqlite.db import path_from_url

        return SqliteStorage(
            path_from_url(url), settings=settings, synchronous=config.sqlite_synchronous
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
