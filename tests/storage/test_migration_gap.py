"""Migrations are applied by version, not by count: a database migrated while one version
was missing (two changes developed side by side, landing in either order) takes that version
when it lands later, once, and the store works with every migration applied."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from eventstitch.storage import open_storage
from eventstitch.storage.postgres import db as postgres_db
from eventstitch.storage.records import RejectionBounds
from eventstitch.storage.sqlite import db as sqlite_db
from tests.storage.conftest import CONFIGS, Run
from tests.storage.test_contract import T0, source
from tests.storage.test_rejections_contract import rejection


def test_a_missing_earlier_version_is_applied_when_it_lands(
    backend: str, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = sqlite_db if backend == "sqlite" else postgres_db
    shipped: Callable[[], list[tuple[int, str]]] = module.migrations
    versions = [version for version, _ in shipped()]
    assert len(versions) >= 3, "needs a version with others before and after it"
    missing = versions[-2]
    monkeypatch.setattr(module, "migrations", lambda: [m for m in shipped() if m[0] != missing])
    with CONFIGS[backend](tmp_path) as config:
        assert run(open_storage(config).migrate()) == [v for v in versions if v != missing]

        monkeypatch.setattr(module, "migrations", shipped)
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
