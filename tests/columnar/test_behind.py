"""A percentile or distinct count over more segment bytes than FILL_BEHIND_BYTES is answered by
one statement at once, and its segments are read into the cache of values behind the answer
(columnar/behind.py): asked again, the answer reads no segment and gives the same numbers. The
queue behind answers takes one job a key and at most its limit; a job that fails keeps
nothing and the next job runs."""

from __future__ import annotations

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


@pytest.mark.parametrize("metric", METRICS)
def test_a_first_answer_leaves_its_segments_to_be_kept_behind_it(
    written: TestClient, metric: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", 0)
    client = written
    first = _ask(client, metric)
    assert _numbers(first) == _expected(client, metric)
    assert first["segments"]["cached"] == 0
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
    first = _ask(written, METRICS[0])
    assert first["segments"]["cached"] == 0
    assert BEHIND.waiting() == 0
    assert _ask(written, METRICS[0])["segments"]["read"] == 0
    partials.clear()
    value_parts.clear()
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", size - 1)  # one past: behind
    assert _ask(written, METRICS[0])["segments"]["cached"] == 0
    assert BEHIND.wait()
    assert _ask(written, METRICS[0])["segments"]["read"] == 0


def test_a_segment_gone_before_it_is_read_behind_keeps_nothing(
    written: TestClient, monkeypatch: Any
) -> None:
    """The refresher may merge hours into a day and delete them while a job waits."""
    monkeypatch.setattr(columnar_query, "FILL_BEHIND_BYTES", 0)
    gate = threading.Event()
    assert BEHIND.offer("gate", gate.wait)  # the thread is busy until the segment is gone
    first = _ask(written, METRICS[2])
    files = segments.files(written.app.ctx)  # type: ignore[attr-defined]
    files[0].rename(files[0].with_suffix(".moved"))
    gate.set()
    assert BEHIND.wait()
    assert value_parts.held_bytes() == 0
    files[0].with_suffix(".moved").rename(files[0])
    assert _numbers(_ask(written, METRICS[2])) == _numbers(first)


def test_one_job_a_key_and_at_most_the_limit() -> None:
    behind = Behind(limit=3)
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
    ran: list[str] = []

    def fails() -> None:
        raise RuntimeError("boom")

    assert behind.offer("x", fails)
    assert behind.offer("y", lambda: ran.append("y"))
    assert behind.wait()
    assert ran == ["y"]
    assert "nothing was kept" in caplog.text
