"""A percentile or distinct count over more segment bytes than FILL_BEHIND_BYTES is answered by
one statement at once, and its segments are read into the cache of values behind the answer
(columnar/behind.py): asked again, the answer reads no segment and gives the same numbers. The
queue behind answers takes one job a key and at most its limit; a job that fails keeps
nothing and the next job runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.columnar import partials, segments, value_parts
from eventstitch.columnar import query as columnar_query
from eventstitch.columnar.behind import BEHIND, Behind
from tests.columnar.test_value_parts import METRICS, _ask, _expected, _numbers, written

pytestmark = pytest.mark.postgres
__all__ = ["written"]  # the fixture, shared


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    BEHIND.wait()
    partials.clear()
    value_parts.clear()
    yield
    BEHIND.wait()  # nothing of this test is kept after it
    partials.clear()
    value_parts.clear()


@contextlib.contextmanager
def held_thread() -> Iterator[threading.Event]:
    """The thread behind answers kept busy until the block ends (or the gate is set in it)."""
    gate = threading.Event()
    assert BEHIND.offer("gate", gate.wait)
    try:
        yield gate
    finally:
        gate.set()


@pytest.mark.parametrize("metric", METRICS)
def test_a_first_answer_leaves_its_segments_to_be_kept_behind_it(
    written: TestClient, metric: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", 0)
    client = written
    with held_thread():
        first = _ask(client, metric)
        assert _numbers(first) == _expected(client, metric)
        assert first["segments"]["cached"] == 0
        assert value_parts.held_bytes() == 0  # answered, nothing kept: that is left for later
        assert BEHIND.waiting() == 2  # the gate, and this question's segments
    assert BEHIND.wait()
    assert value_parts.held_bytes() > 0
    again = _ask(client, metric)
    assert again["segments"] == {"read": 0, "cached": first["segments"]["read"]}
    assert again["rows"] == first["rows"]


def test_under_the_threshold_the_answer_keeps_its_segments_itself(
    written: TestClient, monkeypatch: Any
) -> None:
    size = sum(f.stat().st_size for f in segments.files(written.app.ctx))  # type: ignore[attr-defined]
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", size)  # at the limit: read now
    with held_thread():
        assert _ask(written, METRICS[0])["segments"]["cached"] == 0
        assert value_parts.held_bytes() > 0  # kept by the answer itself
        assert BEHIND.waiting() == 1  # the gate alone
    assert _ask(written, METRICS[0])["segments"]["read"] == 0
    partials.clear()
    value_parts.clear()
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", size - 1)  # one past: behind
    with held_thread():
        assert _ask(written, METRICS[0])["segments"]["cached"] == 0
        assert value_parts.held_bytes() == 0
        assert BEHIND.waiting() == 2
    assert BEHIND.wait()
    assert _ask(written, METRICS[0])["segments"]["read"] == 0


def test_a_segment_gone_before_it_is_read_behind_keeps_nothing(
    written: TestClient, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The refresher may merge hours into a day and delete them while a job waits."""
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", 0)
    files = segments.files(written.app.ctx)  # type: ignore[attr-defined]
    with held_thread():
        first = _ask(written, METRICS[2])
        assert BEHIND.waiting() == 2
        files[0].rename(files[0].with_suffix(".moved"))
    assert BEHIND.wait()
    assert "nothing was kept" in caplog.text
    assert value_parts.held_bytes() == 0
    files[0].with_suffix(".moved").rename(files[0])
    assert _numbers(_ask(written, METRICS[2])) == _numbers(first)


def test_a_question_the_cache_cannot_hold_is_answered_at_once_from_then_on(
    written: TestClient, monkeypatch: Any
) -> None:
    """Read behind and then not kept (a budget too small for its segments): asking again would
    repeat the statement and that work every time, so it stays one statement."""
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", 0)
    monkeypatch.setattr(value_parts.CACHE, "store", lambda *args: None)  # nothing fits
    _ask(written, METRICS[0])
    assert BEHIND.wait()
    with held_thread():
        _ask(written, METRICS[0])
        assert BEHIND.waiting() == 1  # the gate alone: nothing offered again


def test_one_job_a_key_and_at_most_the_limit() -> None:
    behind = Behind(limit=3)
    assert not behind.offer("early", lambda: None)  # no server up in the process: none taken
    behind.open()
    gate = threading.Event()
    ran: list[str] = []
    assert behind.offer("a", lambda: (gate.wait(), ran.append("a")))
    assert not behind.offer("a", lambda: ran.append("a again"))  # its key waits already
    assert behind.offer("b", lambda: ran.append("b"))
    assert behind.offer("c", lambda: ran.append("c"))  # three: at the limit
    assert not behind.offer("d", lambda: ran.append("d"))  # one past it
    assert behind.waiting() == 3
    gate.set()
    assert behind.wait()
    assert ran == ["a", "b", "c"]
    assert behind.waiting() == 0
    assert behind.offer("a", lambda: ran.append("a later"))  # done: its key may come again
    assert behind.wait()
    assert ran[-1] == "a later"


def test_a_failing_job_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    behind = Behind()
    behind.open()
    ran: list[str] = []

    def fails() -> None:
        raise RuntimeError("boom")

    assert behind.offer("x", fails)
    assert behind.offer("y", lambda: ran.append("y"))
    assert behind.wait()
    assert ran == ["y"]
    assert "nothing was kept" in caplog.text


def test_jobs_waiting_are_dropped_when_the_last_server_stops() -> None:
    behind = Behind()
    behind.open()
    behind.open()  # two apps in one process
    gate = threading.Event()
    ran: list[str] = []
    assert behind.offer("running", gate.wait)
    assert behind.offer("waiting", lambda: ran.append("waiting"))
    behind.close()
    assert behind.waiting() == 2  # one server is still up
    behind.close()
    assert behind.waiting() == 1  # the one running ends by itself
    gate.set()
    assert behind.wait()
    assert ran == []
    assert not behind.offer("late", lambda: ran.append("late"))
