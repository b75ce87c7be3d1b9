"""The segments kept fresh by `serve` itself, with real processes and real HTTP: a rebuild killed
mid-write resumes and counts stay exact; two workers (or two servers with their own folders on
one PostgreSQL store) answer the same numbers and one process per folder writes; the hot tail
is counted; EVENTSTITCH_COLUMNAR_REFRESH_SECONDS=0 turns the read side off; a failing round is
retried; `insights rebuild` waits for the folder's writer."""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2 as httpx
import pytest

from eventstitch.columnar import segments
from eventstitch.columnar.lock import writer_lock
from eventstitch.context import AppContext
from eventstitch.ids import iso_to_ms, ms_to_iso, now_ms
from eventstitch.storage import BACKENDS, open_storage
from tests.columnar.test_segments import past_event, write_export
from tests.conftest import API_TOKEN, LiveServer, all_events, make_config, start_server
from tests.pg import backend_params, fresh_database_url

pytestmark = pytest.mark.e2e  # every test here starts processes

HOUR = 3_600_000
TYPES = ["charge", "refund", "alert"]
SEGMENTS = "insight-segments"
TEMPORARY = re.compile(r"^\..*\.(partial|ready|staging\.jsonl)$")


@pytest.fixture(params=backend_params(BACKENDS))
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The store: the embedded default, or a fresh PostgreSQL schema."""
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        yield {"EVENTSTITCH_DATABASE_URL": url} if url else {}


def _import_past_events(
    data: Path, env: dict[str, str], tmp_path: Path, *, count: int, hours: int
) -> None:
    """Source shop and `count` of its events spread over the `hours` hours before this one,
    made with `eventstitch sources create` and `eventstitch import` in the store of `data`,
    before a server starts there (a refresher would otherwise seal those hours first: events
    imported into sealed hours need `insights rebuild --from-scratch`, docs/running.md)."""
    made = _cli(data, env, "sources", "create", "--id", "shop", "--name", "Shop")
    assert made.returncode == 0, made.stderr
    rng = random.Random(count)
    start = now_ms() // HOUR * HOUR
    events = []
    for n in range(count):
        at = start - 1 - rng.randrange(hours * HOUR)
        events.append(past_event(at, n, rng.choice(TYPES), {"n": n, "pad": "x" * 200}))
    dump = tmp_path / f"past-{count}.jsonl"
    write_export(dump, events)
    done = _cli(data, env, "import", str(dump))
    assert done.returncode in (0, 1), done.stderr  # 1: the store also holds system events


def _cli_env(data: Path, env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "EVENTSTITCH_DATA_DIR": str(data), **env}


def _cli(data: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventstitch", *args],
        env=_cli_env(data, env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _expected(events: list[dict[str, Any]], since_ms: int) -> Counter[tuple[Any, ...]]:
    """Counts by (type, hour) computed here from the stored events."""
    counts: Counter[tuple[Any, ...]] = Counter()
    for event in events:
        at = iso_to_ms(event["received_at"])
        if at >= since_ms:
            counts[(event["type"], at // HOUR * HOUR)] += 1
    return counts


def _insights(base_url: str, since_ms: int) -> tuple[str, Counter[tuple[Any, ...]]]:
    """GET /api/insights by type and hour over a new connection (since off the hour, so the
    rollup does not answer it): the engine and the counts."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as fresh:
        answer = fresh.get(
            "/api/insights",
            params={"by": "type,hour", "source_id": "shop", "since": ms_to_iso(since_ms)},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    counts: Counter[tuple[Any, ...]] = Counter()
    for row in body["rows"]:
        if row["count"]:
            counts[(row["type"], iso_to_ms(row["hour"]))] += row["count"]
    assert body["total"] == sum(counts.values())
    return body["engine"], counts


def _temporary_files(where: Path) -> list[str]:
    return [p.name for p in where.glob(".*") if TEMPORARY.match(p.name)]


def _segment_files(where: Path) -> list[Path]:
    """The segments in the folder, whatever their span (hour, day, part of the open hour)."""
    return [p for p in where.glob("*.parquet") if re.match(r"^(hour|day|part)-", p.name)]


def _checkpoint(where: Path) -> int:
    try:
        return int((where / "checkpoint").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _wait_for_checkpoint(where: Path, at_least: int, server: LiveServer) -> None:
    """Poll (bounded) until the segments reach `at_least`, the end of the last sealed hour."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log_path.read_text()
        try:
            if int((where / "checkpoint").read_text()) >= at_least:
                return
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no segments in time: {server.log_path.read_text()}")


def _sealed_end() -> int:
    """The end of the last hour the refresher may write now (sealed a minute after it ends)."""
    return (now_ms() - 60_000) // HOUR * HOUR


def test_killed_rebuild_resumes_and_counts_equal_the_stored_events(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    env = {**database_env, "EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "3600"}  # no rounds here
    _import_past_events(data, env, tmp_path, count=30_000, hours=12)
    server = start_server(data, tmp_path / "server.log", **env)
    try:
        with server.client() as http:
            stored = all_events(http, source_id="shop")
        where = data / SEGMENTS
        rebuild = subprocess.Popen(
            [sys.executable, "-m", "eventstitch", "insights", "rebuild"],
            env=_cli_env(data, env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        seen: list[str] = []
        while time.monotonic() < deadline and rebuild.poll() is None and not seen:
            seen = _temporary_files(where) if where.exists() else []
            if not seen:
                time.sleep(0.002)
        assert seen, "the rebuild ended before a segment write was seen"
        os.kill(rebuild.pid, signal.SIGKILL)  # mid-write: no chance to clean up
        rebuild.wait(timeout=10)
        assert _temporary_files(where), "the kill left no temporary file to clean up"
        assert _checkpoint(where) < _sealed_end()  # killed before the last hour

        again = _cli(data, env, "insights", "rebuild")
        assert again.returncode == 0, again.stderr
        assert _temporary_files(where) == []
        assert _checkpoint(where) >= _sealed_end()
        since = min(iso_to_ms(e["received_at"]) for e in stored) - 1
        engine, counts = _insights(server.url, since)
        assert engine == "columnar"
        assert counts == _expected(stored, since)
    finally:
        server.stop()


def test_two_workers_answer_the_same_counts_written_by_one_process_and_count_the_hot_tail(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    env = {
        **database_env,
        "EVENTSTITCH_WORKERS": "2",
        "EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "1",
        "EVENTSTITCH_LOG_LEVEL": "info",
    }
    _import_past_events(data, env, tmp_path, count=3000, hours=6)
    server = start_server(data, tmp_path / "server.log", **env)
    try:
        with server.client() as http:
            stored = all_events(http, source_id="shop")
        where = data / SEGMENTS
        _wait_for_checkpoint(where, _sealed_end(), server)
        since = min(iso_to_ms(e["received_at"]) for e in stored) - 1
        expected = _expected(stored, since)
        answers = [_insights(server.url, since) for _ in range(30)]
        assert {engine for engine, _ in answers} == {"columnar"}
        assert all(counts == expected for _, counts in answers)

        # One writer at a time: the rounds that wrote, from whichever worker, never overlap.
        rounds = _written_rounds(server)
        assert rounds, server.log_path.read_text()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(rounds)), rounds

        # The hot tail: an event acknowledged a moment ago is counted, whichever worker answers.
        with httpx.Client(base_url=server.url, timeout=10) as fresh:
            just_now = fresh.post("/collect/charge/shop", json={"n": -1})
        assert just_now.status_code == 200
        expected_now = _expected([*stored, _received(server, just_now.json()["id"])], since)
        assert sum(expected_now.values()) == sum(expected.values()) + 1
        for _ in range(10):
            engine, counts = _insights(server.url, since)
            assert engine == "columnar"
            assert counts == expected_now
    finally:
        server.stop()


def _written_rounds(server: LiveServer) -> list[tuple[float, float, str]]:
    """The refresher's rounds that wrote, from the log: (began, ended, pid), sorted. Polled
    (bounded): the round's child writes the checkpoint before the worker logs the round."""
    deadline = time.monotonic() + 60
    while True:
        rounds = sorted(
            (float(began), float(ended), pid)
            for pid, began, ended in re.findall(
                r"wrote \d+ segment\(s\) in process (\d+) holding the folder from "
                r"([\d.]+) to ([\d.]+)",
                server.log_path.read_text(),
            )
        )
        if rounds or time.monotonic() > deadline:
            return rounds
        time.sleep(0.2)


def _received(server: LiveServer, event_id: str) -> dict[str, Any]:
    with server.client() as http:
        answer = http.get(f"/api/events/{event_id}")
    assert answer.status_code == 200, answer.text
    event: dict[str, Any] = answer.json()
    return event


def test_refresh_seconds_zero_writes_no_segments_and_insights_answer_from_the_store(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {"EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "0"}
    _import_past_events(data, env, tmp_path, count=500, hours=3)
    server = start_server(data, tmp_path / "server.log", **env)
    try:
        with server.client() as http:
            stored = all_events(http, source_id="shop")
        since = min(iso_to_ms(e["received_at"]) for e in stored) - 1
        time.sleep(2.5)  # rounds would have run by now at the smallest interval
        assert not (data / SEGMENTS).exists()
        engine, counts = _insights(server.url, since)
        assert engine == "scan"
        assert counts == _expected(stored, since)
        # Segments written by hand are not read either while the setting is 0.
        written = _cli(data, env, "insights", "rebuild")
        assert written.returncode == 0, written.stderr
        assert "read side off" in written.stderr
        assert _segment_files(data / SEGMENTS)
        engine, counts = _insights(server.url, since)
        assert engine == "scan"
        assert counts == _expected(stored, since)
    finally:
        server.stop()


@pytest.mark.parametrize("refresh_in", ["process", "thread"])
def test_a_failing_round_is_logged_and_the_next_round_writes(
    tmp_path: Path, refresh_in: str
) -> None:
    data = tmp_path / "data"
    env = {
        "EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "1",
        "EVENTSTITCH_COLUMNAR_REFRESH_IN": refresh_in,
    }
    _import_past_events(data, env, tmp_path, count=300, hours=2)
    blocker = data / SEGMENTS
    blocker.write_text("not a folder")  # every round fails until it is gone
    server = start_server(data, tmp_path / "server.log", **env)
    try:
        with server.client() as http:
            stored = all_events(http, source_id="shop")
        deadline = time.monotonic() + 60
        while "refresh failed" not in server.log_path.read_text():
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.2)
        assert server.process.poll() is None
        since = min(iso_to_ms(e["received_at"]) for e in stored) - 1
        assert _insights(server.url, since)[1] == _expected(stored, since)
        blocker.unlink()
        _wait_for_checkpoint(blocker, _sealed_end(), server)
        engine, counts = _insights(server.url, since)
        assert engine == "columnar"
        assert counts == _expected(stored, since)
    finally:
        server.stop()


def test_rebuild_command_waits_for_the_folder_writer_then_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "3600"}
    _import_past_events(data, env, tmp_path, count=300, hours=2)
    server = start_server(data, tmp_path / "server.log", **env)
    try:
        where = data / SEGMENTS
        with writer_lock(where, wait=False) as held:  # as a server's round would
            assert held is not None
            rebuild = subprocess.Popen(
                [sys.executable, "-m", "eventstitch", "insights", "rebuild"],
                env=_cli_env(data, env),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert rebuild.stderr is not None
            line = rebuild.stderr.readline()
            assert f"waiting for process {os.getpid()}" in line
            assert rebuild.poll() is None
            assert not _segment_files(where)
        rest = rebuild.communicate(timeout=120)[1]
        assert rebuild.returncode == 0, rest
        assert _segment_files(where)
        assert _checkpoint(where) >= _sealed_end()
    finally:
        server.stop()


@pytest.mark.postgres
def test_two_servers_with_their_own_folders_on_one_postgres_store_answer_the_same(
    tmp_path: Path,
) -> None:
    with fresh_database_url() as url:
        env = {
            "EVENTSTITCH_DATABASE_URL": url,
            "EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "1",
        }
        _import_past_events(tmp_path / "one", env, tmp_path, count=2000, hours=4)
        first = start_server(tmp_path / "one", tmp_path / "one.log", **env)
        second = start_server(tmp_path / "two", tmp_path / "two.log", **env)
        try:
            for server in (first, second):  # each machine writes its own folder
                _wait_for_checkpoint(server.data_dir / SEGMENTS, _sealed_end(), server)
            with httpx.Client(base_url=second.url, timeout=10) as fresh:
                assert fresh.post("/collect/charge/shop", json={"n": -1}).status_code == 200
            with first.client() as http:
                stored = all_events(http, source_id="shop")
            since = min(iso_to_ms(e["received_at"]) for e in stored) - 1
            for server in (first, second, first, second):
                engine, counts = _insights(server.url, since)
                assert engine == "columnar"
                assert counts == _expected(stored, since)
        finally:
            first.stop()
            second.stop()


def test_stopping_serve_mid_round_leaves_no_writer_holding_the_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "1"}
    _import_past_events(data, env, tmp_path, count=30_000, hours=12)
    server = start_server(data, tmp_path / "server.log", **env)
    where = data / SEGMENTS
    try:
        deadline = time.monotonic() + 60
        while not (where.exists() and _temporary_files(where)):
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.005)
    finally:
        server.stop()  # SIGTERM, mid-round
    with writer_lock(where, wait=False) as free:
        assert free is not None, "a rebuild process outlived the server and holds the folder"
    again = _cli(data, env, "insights", "rebuild")
    assert again.returncode == 0, again.stderr
    assert "waiting" not in again.stderr
    assert _temporary_files(where) == []
    assert _checkpoint(where) >= _sealed_end()


def test_forgetting_segments_waits_for_the_writer_so_a_round_cannot_bring_them_back(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {"EVENTSTITCH_COLUMNAR_REFRESH_SECONDS": "3600"}
    _import_past_events(data, env, tmp_path, count=300, hours=2)
    built = _cli(data, env, "insights", "rebuild")
    assert built.returncode == 0, built.stderr
    where = data / SEGMENTS
    assert _checkpoint(where)
    assert _segment_files(where)
    config = make_config(data)
    ctx = AppContext.build(config, open_storage(config))  # invalidate reads its settings only
    with writer_lock(where, wait=False) as held:  # a round in progress
        assert held is not None
        forget = threading.Thread(target=segments.invalidate, args=(ctx,))
        forget.start()
        forget.join(timeout=1)
        assert forget.is_alive(), "invalidate did not wait for the writer"
        assert _checkpoint(where)
        assert _segment_files(where)
    forget.join(timeout=60)
    assert not forget.is_alive()
    assert not (where / "checkpoint").exists()
    assert not _segment_files(where)


def test_rounds_start_an_interval_apart_or_at_once_after_a_long_one(monkeypatch: Any) -> None:
    """Rounds on a clock of their own: the wait after a round is the interval less what the
    round took, none after a round longer than the interval (a round that then waited a whole
    interval fell behind at 10 000 events a second, docs/benchmarks.md)."""
    import asyncio

    from eventstitch.columnar import refresher

    clock = [0.0]
    waits: list[float] = []
    took = iter([10.0, 75.0, 60.0, 0.0])  # what each round takes, on the clock

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds
        if len(waits) > 4:
            raise asyncio.CancelledError

    async def refresh(self: Any) -> int:
        clock[0] += next(took)
        return 1

    monkeypatch.setattr(refresher, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(refresher, "asyncio", SimpleNamespace(sleep=sleep))
    monkeypatch.setattr(refresher.Refresher, "refresh", refresh)
    rounds = refresher.Refresher.__new__(refresher.Refresher)
    rounds.interval = 60
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(rounds._rounds())
    assert waits == [60, 50.0, 0.0, 0.0, 60.0]
