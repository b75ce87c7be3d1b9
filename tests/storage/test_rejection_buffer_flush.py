"""The rejections buffer over a real store: a flush is bounded by what waited when it began."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from eventstitch.config import load_config
from eventstitch.ids import now_ms
from eventstitch.metrics import REJECTIONS_DROPPED
from eventstitch.rejections import buffer as buffer_module
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


def test_closing_lets_a_write_in_progress_finish_and_loses_no_refusal(
    storage: Storage, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server stopping right after a refusal: its write is under way when the buffer closes.
    Closing waits for it instead of cancelling it, so the refusal is stored (cancelled, its
    batch was gone, and on PostgreSQL the cancelled transaction could hold the rejections lock
    the closing flush then waited on)."""
    config = load_config({}, data_dir=tmp_path / "unused", rejections_flush_ms=1)
    buffer = RejectionBuffer(config, storage)
    add = storage.rejections.add
    writing = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_add(*args: Any, **kwargs: Any) -> dict[str, int]:
        if args[0]:  # the write of the refusal (not the first pruning, with none)
            writing.set()
            await go_on.wait()
        return await add(*args, **kwargs)

    monkeypatch.setattr(storage.rejections, "add", slow_add)
    start = now_ms() - 60_000
    record = rejection(start, id=id_at(start))

    async def refuse_then_close() -> None:
        buffer.start()
        assert buffer.offer(record)
        await asyncio.wait_for(writing.wait(), timeout=10)
        closing = asyncio.create_task(buffer.close())
        await asyncio.sleep(0.2)
        assert not closing.done()  # waiting for the write, not cancelling it
        go_on.set()
        await asyncio.wait_for(closing, timeout=30)

    run(refuse_then_close())
    assert record.id in {r.id for r in listed(storage, run)}


def test_closing_gives_up_after_its_time_and_counts_what_is_lost(
    storage: Storage, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that never answers cannot hold the shutdown: past CLOSE_SECONDS closing
    returns, and the refusals not written are counted as lost (two test runs hung 120 s in a
    closing flush on PostgreSQL)."""
    config = load_config({}, data_dir=tmp_path / "unused", rejections_flush_ms=1)
    buffer = RejectionBuffer(config, storage)
    never = asyncio.Event()

    async def stuck_add(*args: Any, **kwargs: Any) -> dict[str, int]:
        await never.wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(storage.rejections, "add", stuck_add)
    monkeypatch.setattr(buffer_module, "CLOSE_SECONDS", 0.5)
    start = now_ms() - 60_000
    lost_before = metrics_value("error")

    async def refuse_then_close() -> None:
        for n in range(3):
            assert buffer.offer(rejection(start + n, id=id_at(start + n)))
        await asyncio.wait_for(buffer.close(), timeout=10)

    run(refuse_then_close())
    assert buffer.depth() == 0
    assert metrics_value("error") - lost_before == 3


def metrics_value(cause: str) -> float:
    return REJECTIONS_DROPPED.labels(cause)._value.get()
