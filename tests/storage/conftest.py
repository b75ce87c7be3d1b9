"""The `storage` fixture: one started store per test, for every backend that can run here.

The backends are `eventstitch.storage.BACKENDS`. Adding one: write a context manager
`<name>_config(tmp_path, **overrides)` that yields a `Config` pointing at a fresh, empty
database and removes it afterwards, then add it to `CONFIGS`. Every test in `test_contract.py`
then runs on it too.

No pytest asyncio plugin: each test gets one event loop (`run`), and the store is started and
closed on that loop, since a backend may bind its connections to the loop that started it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from eventstitch.config import Config, load_config
from eventstitch.storage import BACKENDS, open_storage
from eventstitch.storage.interfaces import Storage
from tests.pg import backend_params, fresh_database_url

T = TypeVar("T")


class Run(Protocol):
    """Runs a coroutine to completion on the test's event loop."""

    def __call__(self, coroutine: Coroutine[Any, Any, T], /) -> T: ...


@contextmanager
def sqlite_config(tmp_path: Path, **overrides: Any) -> Iterator[Config]:
    """The embedded backend on a file in the test's temporary folder (removed by pytest)."""
    yield load_config({}, data_dir=tmp_path / "sqlite-data", **overrides)


@contextmanager
def postgres_config(tmp_path: Path, **overrides: Any) -> Iterator[Config]:
    """PostgreSQL on a fresh schema (tests/pg.py), dropped afterwards. Skipped when PostgreSQL
    is unreachable, failed instead under CI=true."""
    with fresh_database_url() as url:
        yield load_config({}, data_dir=tmp_path / "postgres-data", database_url=url, **overrides)


CONFIGS: dict[str, Callable[..., AbstractContextManager[Config]]] = {
    "sqlite": sqlite_config,
    "postgres": postgres_config,
}
assert set(CONFIGS) == set(BACKENDS), "every backend the code defines needs its test settings"


@contextmanager
def started_storage(backend: str, tmp_path: Path, run: Run, **overrides: Any) -> Iterator[Storage]:
    """A store of `backend`, migrated and started on `run`'s loop, closed afterwards.
    `overrides` replace settings (e.g. `queue_size=1`)."""
    with CONFIGS[backend](tmp_path, **overrides) as config:
        storage = open_storage(config)
        run(storage.start())
        try:
            yield storage
        finally:
            run(storage.close())


@pytest.fixture
def run() -> Iterator[Run]:
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete
    finally:
        loop.close()


@pytest.fixture(params=backend_params(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """The backend's name; the contract suite runs once per name."""
    name: str = request.param
    return name


@pytest.fixture
def storage(backend: str, tmp_path: Path, run: Run) -> Iterator[Storage]:
    """A started, empty store of the backend under test."""
    with started_storage(backend, tmp_path, run) as store:
        yield store
