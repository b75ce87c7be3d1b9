"""The `storage` fixture: one started store per test, for every backend that can run here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from eventstitch.config import Config, load_config
from eventstitch.storage import open_storage
from eventstitch.storage.interfaces import Storage

T = TypeVar("T")


def sqlite_config(tmp_path: Path) -> Iterator[Config]:
    yield load_config({}, data_dir=tmp_path / "data")


BACKENDS: dict[str, Callable[[Path], Iterator[Config]]] = {"sqlite": sqlite_config}


class Runner:
    """Runs a test's coroutines on one event loop, with the store started on it."""

    def __init__(self, config: Config) -> None:
        self.loop = asyncio.new_event_loop()
        self.storage: Storage = open_storage(config)
        self.run(self.storage.start())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.storage.close())
        self.loop.close()


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    configs = BACKENDS[request.param](tmp_path)
    runner = Runner(next(configs))
    try:
        yield runner
    finally:
        runner.close()
        for _ in configs:  # let the backend's factory clean up after itself
            pass
