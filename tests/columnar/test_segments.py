"""Insight segments: after `insights rebuild`, `/api/insights` counts from Parquet plus the hot
tail and gives the numbers computed in Python from the stored events, on both backends; an
interrupted rebuild resumes and counts stay exact."""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from eventstitch.columnar import manifests, segments, tail
from eventstitch.config import Config
from eventstitch.ids import iso_to_ms, ms_to_iso, now_ms
from eventstitch.query.schemas import event_json
from eventstitch.storage.records import EventRecord
from eventstitch.transfer.service import EventDigest
from tests.conftest import all_events, assert_error_shape, create_source

HOUR = 3_600_000
WIDTH = {"minute": 60_000, "hour": HOUR, "day": 86_400_000}
TYPES = ["charge", "refund", "alert"]


def _uuid7(ms: int, n: int) -> str:
    """A UUIDv7 of time `ms` (the store reads the receipt time back from the id)."""
    text = f"{ms:012x}7000{0x8000 | (n >> 48):04x}{n & 0xFFFFFFFFFFFF:012x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _past_events(start: int) -> list[EventRecord]:
    """Events spread over the ten hours before `start`, from a fixed seed."""
    rng = random.Random(13)
    events = []
    for n in range(300):
        at = start - rng.randrange(10 * HOUR)
        events.append(past_event(at, n, rng.choice(TYPES), {"n": n}))
    return events


def past_event(
    at: int, n: int, kind: str, properties: dict[str, Any], source: str = "shop"
) -> EventRecord:
    """An event of `source` received at `at`, profile-less, with a UUIDv7 of that time."""
    return EventRecord(
        id=_uuid7(at, n),
        type=kind,
        source_id=source,
        received_ms=at,
        profile_less=True,
        profile_id=None,
        session_id=None,
        properties=properties,
        context={},
    )


def write_export(dump: Path, events: list[EventRecord]) -> None:
    """`events` as an export file `eventstitch import` takes, with its digest."""
    digest = EventDigest()
    lines = [orjson.dumps({"kind": "header", "format": "eventstitch-export", "version": 1})]
    for event in events:
        rendered = event_json(event)
        digest.add(rendered)
        lines.append(orjson.dumps({"kind": "event", "event": rendered}))
    summary = {"kind": "summary", "sources": 0, "profiles": 0}
    lines.append(orjson.dumps({**summary, "events": digest.count, "checksum": digest.hexdigest}))
    dump.write_bytes(b"\n".join(lines) + b"\n")


def _import(tmp_path: Path, events: list[EventRecord]) -> None:
    dump = tmp_path / "past.jsonl"
    write_export(dump, events)
    result = CliRunner().invoke(cli, ["import", str(dump)])
    assert result.exit_code in (0, 1), result.output  # the store also holds system events


def _rebuild(*args: str) -> None:
    result = CliRunner().invoke(cli, ["insights", "rebuild", *args])
    assert result.exit_code == 0, result.output


def _expected(events: list[dict[str, Any]], by: list[str], params: dict[str, Any]) -> Counter:
    counts: Counter[tuple[Any, ...]] = Counter()
    for event in events:
        at = iso_to_ms(event["received_at"])
        if "type" in params and event["type"] != params["type"]:
            continue
        if at < params.get("since_ms", 0) or at >= params.get("until_ms", 1 << 62):
            continue
        key = []
        for dim in by:
            if dim == "type":
                key.append(event["type"])
            elif dim == "source":
                key.append(event["source_id"])
            else:
                key.append(at // WIDTH[dim] * WIDTH[dim])
        counts[tuple(key)] += 1
    return counts


def _answer(client: TestClient, by: list[str], params: dict[str, Any]) -> tuple[str, Counter]:
    query = {"metric": "count", "source_id": "shop", "by": ",".join(by)}
    for name in ("since", "until"):
        if f"{name}_ms" in params:
            query[name] = ms_to_iso(params[f"{name}_ms"])
    if "type" in params:
        query["type"] = params["type"]
    answer = client.get("/api/insights", params=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    counts: Counter[tuple[Any, ...]] = Counter()
    for row in body["rows"]:
        key = tuple(iso_to_ms(row[d]) if d in WIDTH else row[d] for d in by)
        if row["count"]:
            counts[key] += row["count"]
    assert body["total"] == sum(counts.values())
    return body["engine"], counts


def _assert_exact_by_minute(client: TestClient, stored: list[dict[str, Any]], since: int) -> None:
    """The segments answer counts by minute and type since `since`, as Python counts them."""
    engine, counts = _answer(client, ["minute", "type"], {"since_ms": since})
    assert engine == "columnar"
    assert counts == _expected(stored, ["minute", "type"], {"since_ms": since})


def _commit_late(tmp_path: Path, where: Path, late: int) -> None:
    """Store an event received at `late` as if it had committed just now, after the segments
    of its span were written (importing it forgets the segments: they are put back)."""
    written = {f.name: f.read_bytes() for f in where.iterdir() if f.is_file()}
    _import(tmp_path, [past_event(late, 10_000, "charge", {"n": 10_000})])
    for name, content in written.items():
        (where / name).write_bytes(content)
    tail.clear()


def _setup(client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any) -> int:
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    if config.database_url:
        monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)
    create_source(client, id="shop")
    start = now_ms() // HOUR * HOUR
    _import(tmp_path, _past_events(start))
    return start


def test_columnar_counts_equal_python_and_include_the_hot_tail(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    start = _setup(client, config, tmp_path, monkeypatch)
    _rebuild()
    # Hours, or one day once the whole day is sealed (in the hour after midnight UTC).
    assert list((config.data_dir / "insight-segments").glob("*.parquet"))
    just_now = client.post("/collect/charge/shop", json={"n": -1})
    assert just_now.status_code == 200
    stored = all_events(client, source_id="shop")
    assert len(stored) == 301

    @settings(max_examples=25, deadline=None, database=None)
    @given(
        by=st.lists(
            st.sampled_from(["type", "source", "minute", "hour", "day"]), max_size=2, unique=True
        ).filter(lambda dims: sum(d in WIDTH for d in dims) <= 1),
        since=st.one_of(st.none(), st.integers(-11 * 60, 5)),
        until=st.one_of(st.none(), st.integers(-11 * 60, 5)),
        kind=st.one_of(st.none(), st.sampled_from(TYPES)),
    )
    def same_counts(by: list[str], since: int | None, until: int | None, kind: str | None) -> None:
        params: dict[str, Any] = {}
        if since is not None:
            params["since_ms"] = start + since * 60_000 + 7  # never on an hour: not the rollup
        if until is not None:
            params["until_ms"] = start + until * 60_000 + 7
        if kind is not None:
            params["type"] = kind
        engine, counts = _answer(client, by, params)
        assert counts == _expected(stored, by, params), (engine, by, since, until, kind)
        if "minute" not in by and not (since is not None and since >= 0):
            assert engine in ("columnar", "rollup")
        if since is None and "minute" in by:
            assert engine == "columnar"

    same_counts()
    engine, counts = _answer(client, ["type"], {"since_ms": start - 5 * HOUR + 1})
    assert engine == "columnar"
    assert (
        counts[("charge",)]
        == _expected(stored, ["type"], {"since_ms": start - 5 * HOUR + 1})[("charge",)]
    )  # the event acknowledged a moment ago is among them


def test_interrupted_rebuild_resumes_and_counts_stay_exact(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    # Hours stay hours here (after midnight UTC the ten hours before would be a sealed day,
    # put into one day file: compaction has tests of its own).
    monkeypatch.setattr(segments, "_compact_days", lambda *_: None)
    start = _setup(client, config, tmp_path, monkeypatch)
    stored = all_events(client, source_id="shop")
    expected = _expected(stored, ["hour"], {})
    _rebuild()
    where = config.data_dir / "insight-segments"
    # A crash while writing the segment of an hour: the ones after it are missing, the
    # checkpoint still says that hour, and a half-written temporary file is left behind.
    crash_hour = start - 4 * HOUR
    for segment in where.glob("hour-*.parquet"):
        if int(segment.stem.removeprefix("hour-")) >= crash_hour:
            segment.unlink()
    (where / "checkpoint").write_text(f"{crash_hour}\n")
    (where / f".hour-{crash_hour}.parquet.999.partial").write_bytes(b"PAR1 half")
    engine, counts = _answer(client, ["hour"], {"since_ms": start - 11 * HOUR + 1})
    assert engine == "columnar"
    assert counts == expected  # the hours not yet rewritten come from the hot tail
    _rebuild()
    left = [p for p in where.glob(".*") if not p.name.startswith(tail.PREFIX)]
    assert not left  # what this process keeps of the hot tail is not a leftover
    hours = sorted(int(p.stem.removeprefix("hour-")) for p in where.glob("hour-*.parquet"))
    assert hours[-1] >= crash_hour
    engine, counts = _answer(client, ["hour"], {"since_ms": start - 11 * HOUR + 1})
    assert engine == "columnar"
    assert counts == expected


def test_the_open_hour_is_written_in_parts_then_as_an_hour_then_as_a_day(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """As the clock moves: sealed minutes of the open hour become parts, a sealed hour replaces
    its parts, a sealed day replaces its hours; counts stay exact at every step."""
    monkeypatch.setattr(segments, "COVERED_GRACE_S", 0)  # what is covered goes at once
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    if config.database_url:
        monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)
    create_source(client, id="shop")
    day = now_ms() // (24 * HOUR) * (24 * HOUR) - 3 * 24 * HOUR
    rng = random.Random(7)
    events = [
        past_event(
            at,
            n,
            rng.choice(TYPES),
            {"amount": rng.randrange(100), "plan": rng.choice(["free", "pro"])},
        )
        for n, at in enumerate(sorted(day + rng.randrange(26 * HOUR) for _ in range(400)))
    ]
    _import(tmp_path, events)
    stored = all_events(client, source_id="shop")
    expected = _expected(stored, ["hour"], {})
    where = config.data_dir / "insight-segments"
    seal = segments.SEAL_MS
    steps = [
        (day + 30 * 60_000 + seal, {"part"}),
        (day + 59 * 60_000 + seal, {"part"}),
        (day + HOUR + 40 * 60_000 + seal, {"hour", "part"}),
        (day + 25 * HOUR + seal, {"day", "hour"}),
        (day + 3 * 24 * HOUR, {"day"}),
    ]
    for fake_now, kinds in steps:
        monkeypatch.setattr(segments, "now_ms", lambda at=fake_now: at)
        _rebuild()
        listed = segments.files(client.app.ctx)  # type: ignore[attr-defined]
        assert {p.name.split("-")[0] for p in listed} == kinds, (fake_now - day, listed)
        engine, counts = _answer(client, ["hour"], {"since_ms": day - HOUR + 1})
        assert engine == "columnar"
        assert counts == expected
        query = {"metric": "sum:properties.amount", "by": "properties.plan", "source_id": "shop"}
        body = client.get("/api/insights", params=query).json()
        assert body["engine"] == "columnar"
        sums = {row["properties.plan"]: row["value"] for row in body["rows"]}
        for plan in ("free", "pro"):
            want = sum(e["properties"]["amount"] for e in stored if e["properties"]["plan"] == plan)
            assert sums[plan] == want
    assert not list(where.glob("part-*"))


def _shop(client: TestClient, config: Config, monkeypatch: Any) -> None:
    """The CLI's settings pointed at this store, and the source `shop`."""
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    if config.database_url:
        monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)
    create_source(client, id="shop")


def _rounds_reading(monkeypatch: Any) -> list[int]:
    """The receipt times of the events rebuilds read from the store, from now on."""
    read: list[int] = []
    reading = segments.iter_events

    async def counted(**kwargs: Any) -> Any:
        async for event in reading(**kwargs):
            read.append(event.received_ms)
            yield event

    monkeypatch.setattr(segments, "iter_events", counted)
    return read


def _rounds_every_part_ms(monkeypatch: Any, start: int, until: int) -> None:
    """A round every PART_MS from `start` to `until`, on the segments' clock."""
    for at in range(start + segments.PART_MS, until + 1, segments.PART_MS):
        _round_at(monkeypatch, at)


def _round_at(monkeypatch: Any, at: int) -> None:
    monkeypatch.setattr(segments, "now_ms", lambda: at + segments.SEAL_MS)
    _rebuild()


def test_a_sealed_hour_is_put_together_from_its_parts_and_reads_only_the_rest(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """The refresher reads each event from the store once: the hour that replaces its parts is
    those parts and the minutes after them, not the whole hour read and shredded again."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    rng = random.Random(11)
    times = sorted(hour + rng.randrange(2 * HOUR) for _ in range(240))
    _import(
        tmp_path, [past_event(at, n, rng.choice(TYPES), {"n": n}) for n, at in enumerate(times)]
    )
    read = _rounds_reading(monkeypatch)
    first, second = hour + 40 * 60_000, hour + HOUR + 10 * 60_000
    _round_at(monkeypatch, first)
    assert sorted(read) == [at for at in times if at < first]
    read.clear()
    _round_at(monkeypatch, second)
    assert sorted(read) == [at for at in times if first <= at < second]
    listed = segments.files(client.app.ctx)  # type: ignore[attr-defined]
    assert [p.name.split("-")[0] for p in listed] == ["hour", "part"]
    stored = all_events(client, source_id="shop")
    _assert_exact_by_minute(client, stored, hour)
    body = client.get(
        "/api/insights", params={"metric": "sum:properties.n", "source_id": "shop"}
    ).json()
    assert body["engine"] == "columnar"
    assert body["rows"][0]["value"] == sum(e["properties"]["n"] for e in stored)


def test_an_event_committed_after_its_part_was_written_is_in_the_sealed_hour(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """A commit later than SEAL_MS (a writer queue under load, another machine's clock on one
    PostgreSQL) lands in a span a part already holds: the round sealing the hour sees that the
    store holds more there than the parts, and reads the hour whole."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    rng = random.Random(3)
    times = sorted(hour + rng.randrange(HOUR) for _ in range(120))
    _import(
        tmp_path, [past_event(at, n, rng.choice(TYPES), {"n": n}) for n, at in enumerate(times)]
    )
    where = config.data_dir / "insight-segments"
    _round_at(monkeypatch, hour + 40 * 60_000)
    late = hour + 30 * 60_000 + 7
    _commit_late(tmp_path, where, late)
    read = _rounds_reading(monkeypatch)
    _round_at(monkeypatch, hour + HOUR + 5 * 60_000)
    assert sorted(read) == sorted([*times, late])  # the hour whole, and nothing after it
    stored = all_events(client, source_id="shop")
    _assert_exact_by_minute(client, stored, hour)


def _events_of_the_first_minutes(tmp_path: Path, hour: int, minutes: int, seed: int) -> list[int]:
    """About one event a second over the first `minutes` of `hour`, imported; their times."""
    rng = random.Random(seed)
    times = sorted(hour + rng.randrange(minutes * 60_000) for _ in range(minutes * 60))
    _import(
        tmp_path, [past_event(at, n, rng.choice(TYPES), {"n": n}) for n, at in enumerate(times)]
    )
    return times


def _part_spans(client: TestClient) -> list[tuple[int, int]]:
    """The spans of the parts a question reads, oldest first."""
    listed = segments.files(client.app.ctx)  # type: ignore[attr-defined]
    return [(segments.start_of(p), segments.end_of(p)) for p in listed if p.name[:4] == "part"]


def test_rounds_every_part_ms_put_each_minute_then_ten_minutes_into_one_part(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """Rounds PART_MS apart write a part each; a whole minute's parts become one part, and a
    whole ten minutes' one more: a question over the open hour opens a few files, and counts
    stay exact at every step."""
    monkeypatch.setattr(segments, "COVERED_GRACE_S", 0)  # what is covered goes at once
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    _events_of_the_first_minutes(tmp_path, hour, 11, seed=9)
    stored = all_events(client, source_id="shop")
    step = segments.PART_MS
    for at in range(hour + step, hour + 2 * 60_000 + 1, step):
        _round_at(monkeypatch, at)
        engine, counts = _answer(client, ["minute", "type"], {"since_ms": hour})
        assert engine == "columnar"
        assert counts == _expected(stored, ["minute", "type"], {"since_ms": hour})
    minute = 60_000
    assert _part_spans(client) == [(hour, hour + minute), (hour + minute, hour + 2 * minute)]
    for at in range(hour + 3 * minute, hour + 11 * minute + 1, minute):  # rounds that came late
        _round_at(monkeypatch, at)
    assert _part_spans(client) == [
        (hour, hour + 10 * minute),
        (hour + 10 * minute, hour + 11 * minute),
    ]
    where = config.data_dir / "insight-segments"
    assert len(list(where.glob("part-*.parquet"))) == 2  # the parts put in are deleted
    _assert_exact_by_minute(client, stored, hour)


def test_segments_are_not_put_together_past_merge_max_rows(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """Parts, hours and days are put together only into files of at most MERGE_MAX_ROWS rows
    (a high rate's hour would hold up the refresher for minutes): past it the parts stand for
    their ten minutes, their hour and their day (a day with an hour segment too is not made
    of that hour alone), and counts stay exact."""
    monkeypatch.setattr(segments, "MERGE_MAX_ROWS", 200)
    _shop(client, config, monkeypatch)
    day = now_ms() // (24 * HOUR) * (24 * HOUR) - 3 * 24 * HOUR
    hour = day + 5 * HOUR
    quiet = [
        past_event(day + 2 * HOUR + n * 60_000, 5_000 + n, "alert", {"n": n}) for n in range(30)
    ]
    _import(tmp_path, quiet)  # an hour of the same day small enough to be one segment
    _events_of_the_first_minutes(tmp_path, hour, 11, seed=2)  # about 60 a minute
    stored = all_events(client, source_id="shop")
    expected = _expected(stored, ["minute", "type"], {"since_ms": day})
    minute = 60_000
    _rounds_every_part_ms(monkeypatch, hour, hour + 11 * minute)
    minutes = [(hour + m * minute, hour + (m + 1) * minute) for m in range(11)]
    assert _part_spans(client) == minutes  # ten minutes would hold about 600
    for at in (hour + HOUR + segments.PART_MS, day + 3 * 24 * HOUR):
        _round_at(monkeypatch, at)
        assert _part_spans(client) == minutes  # nor the hour, nor the day
        listed = segments.files(client.app.ctx)  # type: ignore[attr-defined]
        assert [p.name for p in listed if not p.name.startswith("part")] == [
            f"hour-{day + 2 * HOUR}.parquet"
        ]
        engine, counts = _answer(client, ["minute", "type"], {"since_ms": day})
        assert engine == "columnar"
        assert counts == expected


def test_an_hour_whose_only_events_came_in_its_last_seconds_is_sealed(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """A quiet hour's checkpoint moves inside it with no part written before it: sealing the
    hour then has no parts to count or put together, and the round still writes it."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    late_in_it = [hour + HOUR - 8_000 + n for n in range(3)]
    _import(tmp_path, [past_event(at, n, "charge", {"n": n}) for n, at in enumerate(late_in_it)])
    for at in (hour + HOUR - 10_000, hour + HOUR + 10_000):
        _round_at(monkeypatch, at)
    stored = all_events(client, source_id="shop")
    assert segments.checkpoint(client.app.ctx) == hour + HOUR + 10_000  # type: ignore[attr-defined]
    _assert_exact_by_minute(client, stored, hour)


def test_an_event_committed_late_into_a_span_with_no_part_is_counted_from_the_next_round(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """A late commit where no part was written (the store held nothing there) is found too: the
    round counts the store over the whole of the last RECHECK_MS, gaps included."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    times = _events_of_the_first_minutes(tmp_path, hour, 1, seed=6)
    where = config.data_dir / "insight-segments"
    _rounds_every_part_ms(monkeypatch, hour, hour + 3 * 60_000)
    late = hour + 150_000 + 3
    _commit_late(tmp_path, where, late)
    read = _rounds_reading(monkeypatch)
    _round_at(monkeypatch, hour + 3 * 60_000 + segments.PART_MS)
    assert late in read
    assert not [at for at in read if at in times]  # the first minute is not read again
    stored = all_events(client, source_id="shop")
    _assert_exact_by_minute(client, stored, hour)


def test_an_event_committed_late_in_the_last_seconds_of_a_sealed_hour_is_counted(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """An hour is sealed 10 s after its end: an event received in its last seconds and
    committed after that is found by the next round's check, which writes the hour again."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    _events_of_the_first_minutes(tmp_path, hour, 2, seed=8)
    where = config.data_dir / "insight-segments"
    for at in (hour + 2 * 60_000, hour + HOUR + segments.PART_MS):
        _round_at(monkeypatch, at)
    assert (where / f"hour-{hour}.parquet").exists()
    late = hour + HOUR - 5_000
    _commit_late(tmp_path, where, late)
    read = _rounds_reading(monkeypatch)
    _round_at(monkeypatch, hour + HOUR + 2 * segments.PART_MS)
    assert late in read
    _assert_exact_by_minute(client, all_events(client, source_id="shop"), hour)


def test_a_high_rate_hour_missing_an_old_late_event_reads_again_only_its_span(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """Sealing an hour whose parts stand for it (past MERGE_MAX_ROWS) and miss an event
    committed minutes late reads again only the span that misses it, not the whole hour (36
    million events at 10 000 a second)."""
    monkeypatch.setattr(segments, "MERGE_MAX_ROWS", 50)
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    times = _events_of_the_first_minutes(tmp_path, hour, 5, seed=12)
    where = config.data_dir / "insight-segments"
    for at in range(hour + 60_000, hour + 5 * 60_000 + 1, 60_000):
        _round_at(monkeypatch, at)
    late = hour + 30_000 + 1  # minutes before the last check's span
    _commit_late(tmp_path, where, late)
    read = _rounds_reading(monkeypatch)
    _round_at(monkeypatch, hour + HOUR + segments.PART_MS)
    assert sorted(read) == sorted([at for at in times if at < hour + 60_000] + [late])
    _assert_exact_by_minute(client, all_events(client, source_id="shop"), hour)


def test_a_crash_after_an_hour_was_written_before_its_checkpoint_is_finished(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """The hour segment is written, then the checkpoint moves past it: after a crash between the
    two, the next round moves the checkpoint on instead of reading the hour again."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    _events_of_the_first_minutes(tmp_path, hour, 2, seed=14)
    where = config.data_dir / "insight-segments"
    _round_at(monkeypatch, hour + 3 * 60_000)
    _round_at(monkeypatch, hour + HOUR + segments.PART_MS)
    assert (where / f"hour-{hour}.parquet").exists()
    (where / "checkpoint").write_text(f"{hour + 3 * 60_000}\n")  # as the crash left it
    read = _rounds_reading(monkeypatch)
    _round_at(monkeypatch, hour + HOUR + 2 * segments.PART_MS)
    assert not [at for at in read if at < hour + HOUR]
    assert segments.checkpoint(client.app.ctx) == hour + HOUR + 2 * segments.PART_MS  # type: ignore[attr-defined]
    _assert_exact_by_minute(client, all_events(client, source_id="shop"), hour)


def test_a_round_starts_only_once_an_event_came_past_the_checkpoint(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any, caplog: Any
) -> None:
    """Each round is a child process (about 0.4 s of CPU): an idle server starts none, and one
    event received past the checkpoint is enough for the next to start."""
    from eventstitch.columnar.refresher import Refresher

    _shop(client, config, monkeypatch)
    _events_of_the_first_minutes(tmp_path, now_ms() // HOUR * HOUR - 5 * HOUR, 1, seed=1)
    checkpoint = (now_ms() // segments.PART_MS + 2) * segments.PART_MS
    _round_at(monkeypatch, checkpoint)  # past every event stored, system events too
    assert segments.checkpoint(client.app.ctx) == checkpoint  # type: ignore[attr-defined]
    ctx = client.app.ctx  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None
    caplog.set_level("DEBUG", logger="eventstitch.columnar.refresher")
    assert portal.call(Refresher(ctx).refresh) == 0
    assert "no event past the checkpoint; no round" in caplog.text
    assert not portal.call(segments.pending, ctx)
    arrived = past_event(checkpoint + 1, 1, "charge", {"n": 1})  # received past it
    assert portal.call(ctx.storage.events.import_batch, [arrived]) == 1
    assert portal.call(segments.pending, ctx)


def test_parts_put_into_a_larger_one_stay_for_a_grace_and_are_not_counted_twice(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """The parts put into a larger part stay until it is COVERED_GRACE_S old (a reader listing
    the folder as one file is renamed in and others deleted could see neither): questions
    leave them out meanwhile, and the first round after the grace deletes them."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    _events_of_the_first_minutes(tmp_path, hour, 2, seed=4)
    stored = all_events(client, source_id="shop")
    where = config.data_dir / "insight-segments"
    _rounds_every_part_ms(monkeypatch, hour, hour + 60_000)
    merged = where / f"part-{hour}-{hour + 60_000}.parquet"
    assert len(list(where.glob("part-*.parquet"))) > 2  # the merged one and those put in
    assert _part_spans(client) == [(hour, hour + 60_000)]
    _assert_exact_by_minute(client, stored, hour)
    _round_at(monkeypatch, hour + 70_000)
    assert len(list(where.glob("part-*.parquet"))) > 2  # not yet
    aged = time.time() - segments.COVERED_GRACE_S - 1
    os.utime(merged, (aged, aged))
    _round_at(monkeypatch, hour + 80_000)
    assert sorted(p.name for p in where.glob("part-*.parquet")) == [
        merged.name,
        f"part-{hour + 60_000}-{hour + 70_000}.parquet",
        f"part-{hour + 70_000}-{hour + 80_000}.parquet",
    ]
    _assert_exact_by_minute(client, stored, hour)


def test_an_event_committed_later_than_the_seal_is_counted_from_the_next_round(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """A commit later than SEAL_MS lands in a span a part already holds: the next round counts
    the store over the parts of the last RECHECK_MS, finds more there than the parts hold, and
    reads again the part that misses it, not the whole hour."""
    _shop(client, config, monkeypatch)
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    times = _events_of_the_first_minutes(tmp_path, hour, 2, seed=5)
    where = config.data_dir / "insight-segments"
    _rounds_every_part_ms(monkeypatch, hour, hour + 2 * 60_000)
    assert _part_spans(client) == [(hour, hour + 60_000), (hour + 60_000, hour + 120_000)]
    late = hour + 95_000 + 7
    _commit_late(tmp_path, where, late)
    stored = all_events(client, source_id="shop")
    engine, counts = _answer(client, ["minute", "type"], {"since_ms": hour})
    assert engine == "columnar"
    assert counts != _expected(stored, ["minute", "type"], {"since_ms": hour})  # missed, so far
    read = _rounds_reading(monkeypatch)
    _round_at(monkeypatch, hour + 130_000)
    assert sorted(read) == sorted([at for at in times if at >= hour + 60_000] + [late])
    _assert_exact_by_minute(client, stored, hour)


@pytest.mark.parametrize("paths", [6, 7])
def test_parts_holding_more_paths_together_than_a_segment_keeps_are_not_merged(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any, paths: int
) -> None:
    """Each part keeps its own most frequent paths; merging parts whose paths differ would make
    an hour wider than EVENTSTITCH_COLUMNAR_MAX_PATHS (past the memory cap at the default 256).
    At the limit the parts are merged; one past it the hour is read whole, keeping its most
    frequent paths as any hour does."""
    _shop(client, config, monkeypatch)
    monkeypatch.setenv("EVENTSTITCH_COLUMNAR_MAX_PATHS", "6")
    hour = now_ms() // HOUR * HOUR - 5 * HOUR
    events, n = [], 0
    rounds = ((5, ["a", "b"]), (25, ["a", "c", "d"]), (45, ["a", "e", "f", "g"][: paths - 3]))
    for minute, keys in rounds:  # six paths together, or seven
        for second in range(10):
            at = hour + minute * 60_000 + second * 1000
            events.append(past_event(at, n, "charge", dict.fromkeys(keys, second)))
            n += 1
    _import(tmp_path, events)
    for minute in (10, 30, 50):
        _round_at(monkeypatch, hour + minute * 60_000)
    read = _rounds_reading(monkeypatch)
    _round_at(monkeypatch, hour + HOUR + 5 * 60_000)
    assert len(read) == (30 if paths == 7 else 0)
    sealed = config.data_dir / "insight-segments" / f"hour-{hour}.parquet"
    manifest = manifests.read_manifest(sealed)
    assert manifest is not None
    assert len(manifest.columns) == 6
    body = client.get("/api/insights", params={"by": "properties.a", "source_id": "shop"}).json()
    assert body["engine"] == "columnar"
    assert {row["properties.a"]: row["count"] for row in body["rows"]} == dict.fromkeys(
        range(10), 3
    )


@pytest.mark.parametrize("paths", [6, 7])
def test_a_day_whose_hours_hold_more_paths_together_than_a_segment_keeps_stays_hours(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any, paths: int
) -> None:
    """Each hour keeps its own most frequent paths; a day merged from hours whose paths drift
    would unite them all (past the memory cap at the default 256). At
    EVENTSTITCH_COLUMNAR_MAX_PATHS paths together the day is made; one past it the hours stay,
    and answers stay exact and columnar."""
    _shop(client, config, monkeypatch)
    monkeypatch.setenv("EVENTSTITCH_COLUMNAR_MAX_PATHS", "6")
    day = now_ms() // (24 * HOUR) * (24 * HOUR) - 3 * 24 * HOUR
    events, n = [], 0
    hours = ((1, ["a", "b"]), (5, ["a", "c", "d"]), (9, ["a", "e", "f", "g"][: paths - 3]))
    for at_hour, keys in hours:  # six paths together, or seven
        for second in range(10):
            at = day + at_hour * HOUR + second * 1000
            events.append(past_event(at, n, "charge", dict.fromkeys(keys, second)))
            n += 1
    _import(tmp_path, events)
    _rebuild()
    listed = [f.name.split("-")[0] for f in segments.files(client.app.ctx)]  # type: ignore[attr-defined]
    assert listed == (["day"] if paths == 6 else ["hour"] * 3)
    body = client.get("/api/insights", params={"by": "properties.a", "source_id": "shop"}).json()
    assert body["engine"] == "columnar"
    counts = {row["properties.a"]: row["count"] for row in body["rows"]}
    assert counts == dict.fromkeys(range(10), 3)


def test_erasing_a_profile_removes_its_events_from_the_segments(
    client: TestClient, config: Config, monkeypatch: Any
) -> None:
    """Right to be forgotten reaches the insight segments: after an erase no segment holds the
    person's email, answers leave their events out at once, and a rebuild writes them again."""
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    if config.database_url:
        monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)
    rule = [{"path": "email", "kind": "email", "create_profile": True}]
    create_source(client, id="shop", identification=rule)
    for email in ["gone@example.com"] * 3 + ["kept@example.com"] * 2:
        assert client.post("/collect/signup/shop", json={"email": email}).status_code == 200
    person = client.get("/api/events", params={"source_id": "shop"}).json()["events"]
    gone = next(e["profile_id"] for e in person if e["properties"]["email"].startswith("gone"))
    later = now_ms() + 2 * HOUR
    monkeypatch.setattr(segments, "now_ms", lambda: later)  # the hour of these events sealed
    _rebuild()
    where = config.data_dir / "insight-segments"
    written = list(where.glob("*.parquet"))
    assert written
    assert any(b"gone@example.com" in p.read_bytes() for p in written)
    query = {"metric": "count_distinct:properties.email", "source_id": "shop"}
    assert client.get("/api/insights", params=query).json()["rows"][0]["value"] == 2

    assert client.delete(f"/api/profiles/{gone}").status_code == 200

    assert not any(b"gone@example.com" in p.read_bytes() for p in where.glob("*"))
    answer = client.get("/api/insights", params=query).json()
    assert (answer["rows"][0]["value"], answer["total"]) == (1, 2)
    _rebuild()
    answer = client.get("/api/insights", params=query).json()
    assert (answer["engine"], answer["rows"][0]["value"], answer["total"]) == ("columnar", 1, 2)


def test_a_query_past_the_memory_caps_is_a_400_naming_them(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """DuckDB's memory and spill caps hold: a percentile over more than they allow is refused
    with a 400 that names the settings, not a 500; within the caps the same query answers."""
    _setup(client, config, tmp_path, monkeypatch)
    _rebuild()
    query = {"metric": "p95:properties.n", "by": "type", "source_id": "shop"}
    assert client.get("/api/insights", params=query).json()["engine"] == "columnar"
    # Nothing kept from the segments (the first answer's numbers would be merged from there).
    tight = dataclasses.replace(
        config, columnar_memory_mb=1, columnar_spill_mb=1, columnar_cache_values_mb=0
    )
    with TestClient(EventstitchApp(tight), raise_server_exceptions=False) as small:
        small.headers["Authorization"] = client.headers["Authorization"]
        answer = small.get("/api/insights", params=query)
    body = assert_error_shape(answer, 400)
    assert body["errors"][0]["field"] == "metric"
    assert "EVENTSTITCH_COLUMNAR_MEMORY_MB" in body["error"]
    assert client.get("/api/insights", params=query).status_code == 200


EVENTS = 20_000


def test_a_segment_of_wide_events_is_written_within_the_memory_cap(
    client: TestClient, config: Config, tmp_path: Path, monkeypatch: Any
) -> None:
    """Segments are written in the order the store gives the events (newest first), not
    sorted: a sort holds every typed column of a whole hour, which past about 100 000
    realistic events did not fit the default 256 MB cap (the refresher then failed every
    round). Here many wide events against a small cap."""
    monkeypatch.setenv("EVENTSTITCH_DATA_DIR", str(config.data_dir))
    if config.database_url:
        monkeypatch.setenv("EVENTSTITCH_DATABASE_URL", config.database_url)
    monkeypatch.setenv("EVENTSTITCH_COLUMNAR_MEMORY_MB", "128")  # sorted, it needed more
    create_source(client, id="shop")
    hour = now_ms() // HOUR * HOUR - 2 * HOUR
    wide = {f"field_{k}": f"{k:03d}" * 40 for k in range(20)}
    events = [
        past_event(hour + n * 100, n, TYPES[n % len(TYPES)], {**wide, "n": n})
        for n in range(EVENTS)
    ]
    _import(tmp_path, events)
    _rebuild()
    where = config.data_dir / "insight-segments"
    assert list(where.glob("*.parquet"))
    query = {"metric": "sum:properties.n", "source_id": "shop", "until": ms_to_iso(hour + HOUR)}
    answer = client.get("/api/insights", params=query).json()
    assert answer.get("engine") == "columnar", answer
    assert answer["rows"][0]["value"] == sum(range(EVENTS))
