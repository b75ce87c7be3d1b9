"""Stores in different schemas of one PostgreSQL database are independent: the advisory locks a
store takes (migrations, identity, refused requests) are its schema's, so a transaction holding
them in another schema does not hold this store up. Tests run side by side this way, and one
database may serve several deployments; with database-wide keys, one stalled store stalled
them all (a suite run once hung 120 s in a shutdown writing refused requests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eventstitch.storage import open_storage
from eventstitch.storage.postgres.db import MIGRATION_LOCK
from eventstitch.storage.postgres.rejections import REJECTIONS_LOCK
from eventstitch.storage.postgres.writer import IDENTITY_LOCK, LOCK_IN_SCHEMA
from eventstitch.storage.records import RejectionBounds
from tests.conftest import make_config
from tests.pg import fresh_database_url
from tests.storage.conftest import Run

pytestmark = pytest.mark.postgres

PATIENCE_S = 30
"""Far past what these calls take unblocked; before the keys were per schema they waited for
the other transaction, without end."""


def test_locks_held_in_another_schema_do_not_hold_this_store_up(tmp_path: Path, run: Run) -> None:
    import psycopg

    with (
        fresh_database_url() as other_url,
        fresh_database_url() as url,
        psycopg.connect(other_url) as holder,  # one transaction, left open
    ):
        for key in (MIGRATION_LOCK, IDENTITY_LOCK, REJECTIONS_LOCK):
            holder.execute(LOCK_IN_SCHEMA, (key,))
        storage = open_storage(make_config(tmp_path / "data", database_url=url))
        run(asyncio.wait_for(storage.start(), PATIENCE_S))  # migrates under its lock
        try:
            bounds = RejectionBounds(max_rows=10, max_bytes=10_000, min_received_ms=0)
            add = storage.rejections.add([], bounds=bounds, lost={"error": 1})
            assert run(asyncio.wait_for(add, PATIENCE_S)) is not None
        finally:
            run(storage.close())
        holder.rollback()
