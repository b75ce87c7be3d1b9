"""The rejections migrations (SQLite 0006, PostgreSQL 0003) leave a gap for another change's
0005 and 0002: a database migrated with the gap takes the missing version when it lands later,
and both kinds of migration work together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from eventstitch.storage import open_storage, postgres, sqlite
from eventstitch.storage.interfaces import RejectionBounds
from tests.storage.conftest import BACKENDS, Run
from tests.storage.test_contract import T0, source
from tests.storage.test_rejections_contract import rejection

# What the other change might add: a source column (the same SQL on both backends).
LATER = "ALTER TABLE sources ADD COLUMN later_note TEXT NOT NULL DEFAULT '';"
GAP = {"sqlite": ([1, 2, 3, 4, 6], 5), "postgres": ([1, 3], 2)}


def test_a_missing_earlier_version_is_applied_when_it_lands(
    backend: str, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, missing = GAP[backend]
    module = sqlite if backend == "sqlite" else postgres
    shipped: Callable[[], list[tuple[int, str]]] = module._migrations
    with BACKENDS[backend](tmp_path) as config:
        assert run(open_storage(config).migrate()) == first

        monkeypatch.setattr(module, "_migrations", lambda: sorted([*shipped(), (missing, LATER)]))
        storage = open_storage(config)
        assert run(storage.migrate()) == [missing]
        assert run(storage.migrate()) == []
        run(storage.start())
        try:
            assert run(storage.sources.create(source("hooks"))).id == "hooks"
            kept = rejection(T0)
            bounds = RejectionBounds(max_rows=10, min_received_ms=0)
            run(storage.rejections.add([kept], bounds=bounds, lost={}))
            assert run(storage.rejections.get(kept.id)) == kept
        finally:
            run(storage.close())
