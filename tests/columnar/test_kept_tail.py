"""The hot tail kept per process in commit order (columnar/tail.py): asked again, an answer
reads from the store only the events committed since, with the numbers computed in Python
from the stored events, whatever the metric; rows the segments take over are counted once;
forgetting the segments forgets what was kept; at most EVENTSTITCH_COLUMNAR_TAIL_ROWS rows are
kept. The commit order is SQLite's rowid and, on PostgreSQL, the inserting transaction seen
by a snapshot, which a later UPDATE (a conversion) does not change."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.columnar import partials, segments, tail
from eventstitch.config import Config
from eventstitch.ids import iso_to_ms, ms_to_iso, now_ms
from tests.columnar.test_partials import QUERY, _ask, _expected, _numbers
from tests.columnar.test_segments import _rebuild, _setup
from tests.conftest import API_TOKEN, all_events, make_config
from tests.identity.support import cli_json

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    tail.clear()
    partials.clear()
    yield
    tail.clear()
    partials.clear()


def _write(client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any) -> TestClient:
    _setup(client, config, tmp_path, monkeypatch)
    _rebuild()
    for n in (1000, 2000, 3000):
        _collect(client, n)
    return client


@pytest.fixture
def written(client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any) -> TestClient:
    """A client whose store holds ten hours of past events, written into segments, and three
    events just collected, in the hot tail; on each backend."""
    return _write(client, config, tmp_path, monkeypatch)


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Config:
    """The embedded store, the one with a commit order to follow."""
    return make_config(tmp_path / "data")


@pytest.fixture
def on_sqlite(sqlite_config: Config, tmp_path: Path, monkeypatch: Any) -> Iterator[TestClient]:
    """`written` on SQLite alone: what is kept, and how."""
    with TestClient(EventstitchApp(sqlite_config), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield _write(client, sqlite_config, tmp_path, monkeypatch)


def _collect(client: TestClient, n: int, kind: str = "charge") -> None:
    assert client.post(f"/collect/{kind}/shop", json={"n": n}).status_code == 200


def _seal_up_to(monkeypatch: Any, until_ms: int) -> None:
    """A rebuild that seals everything received before `until_ms` (instead of a minute ago)."""
    monkeypatch.setattr(segments, "SEAL_MS", 0)
    monkeypatch.setattr(segments, "PART_MS", 1)
    monkeypatch.setattr(segments, "now_ms", lambda: until_ms)
    _rebuild()


def test_asking_again_reads_only_the_events_committed_since(
    written: TestClient, config: Config
) -> None:
    client = written
    first = _ask(client)
    assert first["tail"]["events"] >= 3
    assert first["tail"]["read"] == first["tail"]["events"]
    assert _numbers(first) == _expected(client)

    again = _ask(client)
    assert again["rows"] == first["rows"]
    assert again["tail"] == {"events": first["tail"]["events"], "read": 0}

    _collect(client, 4000)
    _collect(client, 5000, kind="refund")
    after = _ask(client)
    assert after["tail"]["events"] == first["tail"]["events"] + 2
    assert after["tail"]["read"] == 2
    assert _numbers(after) == _expected(client)


def test_a_kept_tail_answers_distinct_counts_and_percentiles(written: TestClient) -> None:
    client = written
    ns = [e["properties"]["n"] for e in all_events(client, source_id="shop")]
    for metric in ("count_distinct:properties.n", "p50:properties.n"):
        _ask(client, metric=metric, by="")
        _collect(client, 7000)
        _collect(client, 7000)
        ns += [7000, 7000]
        body = _ask(client, metric=metric, by="")
        (row,) = body["rows"]
        if metric.startswith("count_distinct"):
            assert row["value"] == len(set(ns))
        else:  # linear between the two nearest ranks, as DuckDB's quantile_cont
            ordered = sorted(ns)
            at = (len(ordered) - 1) * 0.5
            low = int(at)
            high = min(low + 1, len(ordered) - 1)
            expected = ordered[low] + (ordered[high] - ordered[low]) * (at - low)
            assert row["value"] == pytest.approx(expected)


def test_rows_the_segments_take_over_are_counted_once(
    written: TestClient, monkeypatch: Any
) -> None:
    """The checkpoint moves past part of what was kept: a file wholly before it goes, one it
    cuts is read from it on; the rest of the segments hold the others."""
    client = written
    _ask(client)  # the three events kept in one file
    time.sleep(0.01)
    _collect(client, 4000)
    cut = now_ms()
    time.sleep(0.01)
    _collect(client, 5000)
    _ask(client)  # a second file: the events at 4000 and 5000
    _seal_up_to(monkeypatch, cut)  # the segments take the first file and the 4000
    body = _ask(client)
    assert _numbers(body) == _expected(client)
    assert body["tail"] == {"events": 1, "read": 0}
    app = client.app
    assert isinstance(app, EventstitchApp)
    kept = list(segments.folder(app.ctx).glob(f"{tail.PREFIX}.*"))
    assert len(kept) == 1  # the first file went; the cut one stays, read from the checkpoint

    _seal_up_to(monkeypatch, now_ms() + 1)
    body = _ask(client)
    assert body["tail"] == {"events": 0, "read": 0}
    assert _numbers(body) == _expected(client)
    assert not list(segments.folder(app.ctx).glob(f"{tail.PREFIX}.*"))


def test_questions_asked_at_once_read_each_new_event_once(written: TestClient) -> None:
    """One question at a time brings a kept tail up to date: the same question asked eight
    times at once reads the new events once in all, and every answer counts them."""
    client = written
    _ask(client)
    for n in range(5):
        _collect(client, 20_000 + n)
    expected = _expected(client)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _ask(client), range(8)))
    assert all(_numbers(a) == expected for a in answers)
    assert sum(a["tail"]["read"] for a in answers) == 5


def test_events_converted_after_they_were_kept_are_not_read_again(
    written: TestClient, config: Config, monkeypatch: Any
) -> None:
    """A rule added later links kept events to a profile (an UPDATE of their rows): they are
    still the same events, counted once and not read again."""
    client = written
    for n in range(3):
        assert (
            client.post(
                "/collect/charge/shop", json={"email": f"p{n}@example.com", "n": n}
            ).status_code
            == 200
        )
    first = _ask(client)
    rule = [{"path": "email", "kind": "email", "create_profile": True}]
    assert client.patch("/api/sources/shop", json={"identification": rule}).status_code == 200
    report = cli_json(monkeypatch, config, "identity", "backfill", "--source", "shop")
    assert report["linked"] == 3
    again = _ask(client)
    assert again["tail"] == {"events": first["tail"]["events"], "read": 0}
    assert _numbers(again) == _numbers(first) == _expected(client)


def test_forgetting_the_segments_forgets_what_was_kept(written: TestClient) -> None:
    client = written
    app = client.app
    assert isinstance(app, EventstitchApp)
    first = _ask(client)
    generation = segments.generation(app.ctx)
    segments.invalidate(app.ctx)  # as after erasing a profile's events
    assert segments.generation(app.ctx) != generation
    _rebuild()
    again = _ask(client)
    assert again["tail"]["read"] == again["tail"]["events"] == first["tail"]["events"]
    assert _numbers(again) == _expected(client)


def test_an_erased_person_leaves_no_kept_tail_behind(written: TestClient, config: Config) -> None:
    client = written
    rule = [{"path": "email", "kind": "email", "create_profile": True}]
    assert client.patch("/api/sources/shop", json={"identification": rule}).status_code == 200
    for email in ["gone@example.com"] * 2 + ["kept@example.com"]:
        assert client.post("/collect/signup/shop", json={"email": email}).status_code == 200
    query = {"metric": "count_distinct:properties.email", "by": ""}
    assert _ask(client, **query)["rows"][0]["value"] == 2
    kept = list(segments.folder(app_ctx(client)).glob(f"{tail.PREFIX}.*"))
    assert any(b"gone@example.com" in p.read_bytes() for p in kept)
    gone = next(
        e["profile_id"]
        for e in all_events(client, source_id="shop", type="signup")
        if e["properties"]["email"].startswith("gone")
    )

    assert client.delete(f"/api/profiles/{gone}").status_code == 200

    folder = segments.folder(app_ctx(client))
    assert not any(b"gone@example.com" in p.read_bytes() for p in folder.glob("*") if p.is_file())
    _rebuild()
    answer = _ask(client, **query)
    assert answer["rows"][0]["value"] == 1
    assert answer["tail"]["read"] == answer["tail"]["events"]


def app_ctx(client: TestClient) -> Any:
    app = client.app
    assert isinstance(app, EventstitchApp)
    return app.ctx


def test_a_question_with_until_reads_its_tail_whole(written: TestClient) -> None:
    client = written
    until = ms_to_iso(now_ms() + 3_600_000)
    for _ in range(2):
        body = _ask(client, until=until)
        assert body["tail"]["read"] == body["tail"]["events"] >= 3
        assert _numbers(body) == _expected(client)


def _client_keeping(config: Config, rows: int) -> TestClient:
    app = EventstitchApp(dataclasses.replace(config, columnar_tail_rows=rows))
    test_client = TestClient(app, raise_server_exceptions=False)
    test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    return test_client


@pytest.mark.parametrize("over", [0, 1])
def test_the_kept_rows_are_at_most_their_budget(
    written: TestClient, config: Config, over: int
) -> None:
    events = _ask(written)["tail"]["events"]
    tail.clear()
    with _client_keeping(config, events - over) as budgeted:
        first = _ask(budgeted)
        assert tail.held_rows() == (events if not over else 0)
        again = _ask(budgeted)
        assert again["tail"]["read"] == (0 if not over else events)
        assert _numbers(again) == _numbers(first) == _expected(budgeted)


def test_a_new_question_makes_room_by_dropping_the_least_recently_used(
    written: TestClient, config: Config
) -> None:
    events = _ask(written)["tail"]["events"]
    tail.clear()
    other = {"metric": "count_distinct:source_id"}  # no property read: another tail
    with _client_keeping(config, events) as budgeted:
        _ask(budgeted)
        assert _ask(budgeted, metric="max:properties.n")["tail"]["read"] == 0  # same columns
        _ask(budgeted, **other)
        assert tail.held_rows() == events  # the first question's tail was dropped
        assert _ask(budgeted, **other)["tail"]["read"] == 0
        assert _ask(budgeted)["tail"]["read"] == events


def test_kept_files_are_merged_past_their_number(written: TestClient) -> None:
    client = written
    app = client.app
    assert isinstance(app, EventstitchApp)
    for n in range(tail.MAX_FILES + 3):
        _collect(client, 10_000 + n)
        body = _ask(client)
        assert body["tail"]["read"] == (body["tail"]["events"] if n == 0 else 1)
        files = list(segments.folder(app.ctx).glob(f"{tail.PREFIX}.*"))
        assert 1 <= len(files) <= tail.MAX_FILES
    assert _numbers(body) == _expected(client)


def test_a_rebuild_deletes_the_kept_files_of_processes_that_are_gone(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = tmp_path / f"{tail.PREFIX}.{int(gone.stdout)}.0.parquet"
    half_written = tmp_path / f"{tail.PREFIX}.{int(gone.stdout)}.1.parquet.partial"
    mine = tmp_path / f"{tail.PREFIX}.{os.getpid()}.0.parquet"
    for path in (dead, half_written, mine):
        path.write_bytes(b"")
    tail.delete_orphans(tmp_path)
    assert not dead.exists()
    assert not half_written.exists()
    assert mine.exists()


def test_kept_answers_equal_python_through_any_order_of_collects_asks_and_seals(
    written: TestClient, monkeypatch: Any
) -> None:
    """Hypothesis: events collected, questions asked, and the segments moved on, in any order;
    every answer equals the one computed from the stored events."""
    client = written

    @settings(
        max_examples=8,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        steps=st.lists(
            st.one_of(
                st.tuples(st.just("collect"), st.integers(1, 3)),
                st.tuples(
                    st.just("ask"),
                    st.sampled_from(["sum:properties.n", "count_distinct:source_id"]),
                ),
                st.tuples(st.just("seal"), st.sampled_from([0, 1])),
            ),
            min_size=1,
            max_size=6,
        )
    )
    def answers_stay_exact(steps: list[tuple[str, Any]]) -> None:
        for step, arg in steps:
            if step == "collect":
                for n in range(arg):
                    _collect(client, 100 + n, kind="charge" if n % 2 else "refund")
            elif step == "ask":
                body = _ask(client, metric=arg)
                expected = _expected(client)
                if arg == "count_distinct:source_id":  # no property: a tail of its own
                    assert {r["type"]: r["count"] for r in body["rows"]} == {
                        k: v[0] for k, v in expected.items()
                    }
                else:
                    assert _numbers(body) == expected
            else:
                stored = all_events(client, source_id="shop")
                latest = max(iso_to_ms(e["received_at"]) for e in stored)
                _seal_up_to(monkeypatch, latest + arg)  # before or after the latest event

    answers_stay_exact()


def _reads_delayed(
    client: TestClient, monkeypatch: Any, seconds: float, *, after: bool = False
) -> None:
    """Each page of the tail read from the store takes `seconds` longer (before or after the
    read), so that another request can come in the middle of a question."""
    store = type(app_ctx(client).storage.events)
    read = store.values_committed

    async def delayed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not after:
            await asyncio.sleep(seconds)
        rows = await read(self, *args, **kwargs)
        if after:
            await asyncio.sleep(seconds)
        return rows

    monkeypatch.setattr(store, "values_committed", delayed)


def test_a_question_waiting_on_a_tail_dropped_meanwhile_reads_it_again(
    written: TestClient, config: Config, monkeypatch: Any
) -> None:
    """The first question finds the kept tail over its budget and drops it; the same question,
    waiting meanwhile, reads the tail again instead of only what came after the old position."""
    events = _ask(written)["tail"]["events"]
    tail.clear()
    with _client_keeping(config, events + 1) as client:
        assert _ask(client)["tail"] == {"events": events, "read": events}
        _collect(client, 4000)
        _collect(client, 5000)  # kept + 2 is past the budget: the next question drops it
        expected = _expected(client)
        _reads_delayed(client, monkeypatch, 0.3)
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(_ask, client)
            time.sleep(0.1)
            second = pool.submit(_ask, client)
            answers = [first.result(), second.result()]
        assert [_numbers(a) for a in answers] == [expected, expected]


def test_an_erasure_during_a_question_leaves_no_kept_copy(
    written: TestClient, monkeypatch: Any
) -> None:
    """A question has read an erased person's events, and keeps them after the erasure
    forgot every kept tail: it sees the generation moved and drops its copy."""
    client = written
    rule = [{"path": "email", "kind": "email", "create_profile": True}]
    assert client.patch("/api/sources/shop", json={"identification": rule}).status_code == 200
    for email in ["gone@example.com", "kept@example.com"]:
        assert client.post("/collect/signup/shop", json={"email": email}).status_code == 200
    gone = next(
        e["profile_id"]
        for e in all_events(client, source_id="shop", type="signup")
        if e["properties"]["email"].startswith("gone")
    )
    _reads_delayed(client, monkeypatch, 0.4, after=True)
    query = {"metric": "count_distinct:properties.email", "by": ""}
    with ThreadPoolExecutor(max_workers=2) as pool:
        asked = pool.submit(client.get, "/api/insights", params={**QUERY, **query})
        time.sleep(0.15)  # the question has read the person's events, not kept them yet
        assert client.delete(f"/api/profiles/{gone}").status_code == 200
        assert asked.result().status_code == 200  # from what was left, or from the store
    folder = segments.folder(app_ctx(client))
    assert not any(b"gone@example.com" in p.read_bytes() for p in folder.glob("*") if p.is_file())


def test_a_rebuild_starting_while_a_kept_file_is_written_leaves_it_alone(
    written: TestClient, monkeypatch: Any
) -> None:
    """A refresher round deletes leftover temporary files of segments; a kept tail's file
    being written at that moment is not one of them."""
    client = written
    _ask(client)
    _collect(client, 4000)
    write = tail._copy
    rounds = []

    def with_a_round(limits: Any, select: str, target: Path) -> None:
        original_replace = os.replace

        def round_then_replace(source: Any, destination: Any) -> None:
            if not rounds:
                rounds.append(source)
                _rebuild()  # a round starting now (its own process in production)
            original_replace(source, destination)

        monkeypatch.setattr(tail.os, "replace", round_then_replace)
        try:
            write(limits, select, target)
        finally:
            monkeypatch.setattr(tail.os, "replace", original_replace)

    monkeypatch.setattr(tail, "_copy", with_a_round)
    body = _ask(client)
    assert rounds
    assert _numbers(body) == _expected(client)


def test_a_process_keeps_tails_for_at_most_max_kept_questions(
    written: TestClient, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tail, "MAX_KEPT", 2)
    for kind in ("charge", "refund", "signup"):
        _ask(written, type=kind)
    assert len(tail._kept) == 2


def test_newest_events_deleted_behind_the_position_are_read_again(
    on_sqlite: TestClient, sqlite_config: Config
) -> None:
    """Events are deleted only by an erasure, which forgets kept tails; should the newest go
    otherwise, the store is behind the position read, and the tail is read again."""
    client = on_sqlite
    _ask(client)
    conn = sqlite3.connect(sqlite_config.data_dir / "eventstitch.db")
    with conn:
        conn.execute("DELETE FROM events WHERE rowid > (SELECT max(rowid) - 2 FROM events)")
    conn.close()
    body = _ask(client)
    assert body["tail"]["read"] == body["tail"]["events"]
    assert _numbers(body) == _expected(client)
