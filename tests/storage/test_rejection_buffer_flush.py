"""The rejections buffer over a real store: a flush is bounded by what waited when it began."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from eventstitch.config import load_config
from eventstitch.ids import now_ms
from eventstitch.rejections.buffer import RejectionBuffer
from eventstitch.storage.interfaces import Storage
from tests.storage.conftest import Run
from tests.storage.test_contract import id_at
from tests.storage.test_rejections_contract import listed, rejection


def test_a_flush_writes_what_waited_and_returns_while_refusals_keep_coming(
    storage: Storage, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing flushes this process's buffer first; refusals arriving all the while must not
    keep it waiting: it writes what waited when it began, and returns."""
    config = load_config({}, data_dir=tmp_path / "unused", rejections_buffer_size=100_000)
    buffer = RejectionBuffer(config, storage)
    start = now_ms() - 60_000  # within the age bound
    waiting = [rejection(start + n, id=id_at(start + n)) for n in range(450)]
    for record in waiting:
        assert buffer.offer(record)
    add = storage.rejections.add
    arrivals = iter(range(1_000, 50_000))

    async def add_while_more_arrive(*args: Any, **kwargs: Any) -> dict[str, int]:
        for _ in range(200):  # a steady stream: each write sees as many new ones as it takes
            n = next(arrivals)
            buffer.offer(rejection(start + n, id=id_at(start + n)))
        return await add(*args, **kwargs)

    monkeypatch.setattr(storage.rejections, "add", add_while_more_arrive)
    run(asyncio.wait_for(buffer.flush(), timeout=30))
    stored = {r.id for r in listed(storage, run)}
    assert {r.id for r in waiting} <= stored
    assert buffer.depth() > 0  # the later arrivals wait for the next write
