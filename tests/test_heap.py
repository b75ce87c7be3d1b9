"""Start-up objects frozen out of the cyclic collector's full collections, and its pauses on
`/metrics`: a real server after a burst of events, and the two pieces on their own."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import httpx2 as httpx
import pytest

from eventstitch.heap import CollectorPauses, freeze_startup_objects
from eventstitch.storage import BACKENDS
from tests.conftest import all_events, create_source, start_server
from tests.pg import backend_params, fresh_database_url
from tests.rejections.test_flood import samples

EVENTS = 600


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's heap as it was: whatever a test froze is handed back afterwards."""
    yield
    gc.unfreeze()


@pytest.mark.e2e
@pytest.mark.parametrize("backend", backend_params(BACKENDS))
def test_a_server_freezes_its_start_up_objects_and_shows_its_collector_pauses(
    tmp_path: Path, backend: str
) -> None:
    with fresh_database_url() if backend == "postgres" else nullcontext("") as url:
        env = {"EVENTSTITCH_DATABASE_URL": url} if url else {}
        server = start_server(tmp_path / "data", tmp_path / "server.log", **env)
        try:
            with server.client() as http:
                create_source(http, id="hooks")

            def post(n: int) -> int:
                with httpx.Client(base_url=server.url, timeout=30) as one:
                    body = {"n": n, "email": f"u{n}@example.com", "tags": ["a", "b"]}
                    return one.post("/collect/signup/hooks", json=body).status_code

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(post, range(EVENTS))) == {200}
            with server.client() as http:
                metrics = http.get("/metrics").text
                assert len(all_events(http, source_id="hooks")) == EVENTS
        finally:
            server.stop()
    found = samples(metrics)  # a sample missing from /metrics fails here (KeyError)
    # The modules, the app and its settings: tens of thousands of objects no full collection
    # walks any more.
    assert found[("eventstitch_gc_frozen_objects", ())] > 10_000
    # Handling the events allocated enough for the youngest generation to be collected, timed.
    assert found[("eventstitch_gc_pause_seconds_count", (("generation", "0"),))] > 0
    assert found[("eventstitch_gc_pause_seconds_sum", (("generation", "0"),))] > 0
    full = found[("eventstitch_gc_pause_seconds_count", (("generation", "2"),))]
    assert (
        full
        == found[("eventstitch_gc_pause_seconds_bucket", (("generation", "2"), ("le", "+Inf")))]
    )


def test_objects_alive_at_the_freeze_leave_the_collector_and_later_ones_do_not(
    unfrozen: None,
) -> None:
    before = {"kept": [1, 2, 3]}
    frozen = freeze_startup_objects()
    after = {"made": ["later"]}
    assert frozen >= 1
    assert gc.get_freeze_count() == frozen
    tracked = gc.get_objects()
    assert not any(o is before for o in tracked)
    assert any(o is after for o in tracked)


def test_every_collection_is_timed_under_its_generation_once_however_often_installed() -> None:
    pauses = CollectorPauses()
    pauses.install()
    pauses.install()
    gc.disable()  # only the collections asked for here
    try:
        assert gc.callbacks.count(pauses._on_collection) == 1
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        families = {family.name: family for family in pauses.collect()}
        histogram = families["eventstitch_gc_pause_seconds"]
        counts = {
            s.labels["generation"]: s.value for s in histogram.samples if s.name.endswith("_count")
        }
        assert counts == {"0": 1, "1": 0, "2": 2}
        infinite = [
            s.value
            for s in histogram.samples
            if s.name.endswith("_bucket") and s.labels == {"generation": "2", "le": "+Inf"}
        ]
        assert infinite == [2.0]
    finally:
        gc.enable()
        gc.callbacks.remove(pauses._on_collection)
