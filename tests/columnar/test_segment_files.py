"""Segment files as readers hold them: a file written again under its name is read anew, a
deleted one is let go, and the attachments and the manifest cache stay within their bounds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from eventstitch.columnar import engine, manifests, segment_files
from eventstitch.columnar.shred import Manifest


@pytest.fixture
def limits(tmp_path: Path) -> engine.Limits:
    return engine.Limits(memory_mb=256, spill_dir=tmp_path / "spill", spill_mb=256)


def _segment(limits: engine.Limits, path: Path, rows: int) -> Path:
    path.unlink(missing_ok=True)
    segment_files._create(path, f"SELECT range AS n FROM range({rows})", [], limits)
    return path


def _count(limits: engine.Limits, files: list[Path]) -> list[int]:
    cursor = engine.connect(limits)
    try:
        with segment_files.reading(cursor, files) as tables:
            return [cursor.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
    finally:
        cursor.close()


def _held_deleted() -> list[str]:
    """Files this process holds open that were deleted."""
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith(" (deleted)") and ".duckdb" in target:
            found.append(target)
    return found


def test_a_segment_written_again_under_its_name_is_read_anew(
    limits: engine.Limits, tmp_path: Path
) -> None:
    path = tmp_path / "hour-0.duckdb"
    for rows in (1, 2, 3, 2, 1):
        _segment(limits, path, rows)
        assert _count(limits, [path]) == [rows]
    assert not [f for f in _held_deleted() if str(tmp_path) in f]


def test_a_deleted_segment_is_let_go_at_the_next_read(
    limits: engine.Limits, tmp_path: Path
) -> None:
    kept, gone = (
        _segment(limits, tmp_path / "a.duckdb", 5),
        _segment(limits, tmp_path / "b.duckdb", 7),
    )
    assert _count(limits, [kept, gone]) == [5, 7]
    gone.unlink()
    assert [f for f in _held_deleted() if str(gone) in f]  # attached: still open
    assert _count(limits, [kept]) == [5]
    assert not [f for f in _held_deleted() if str(tmp_path) in f]


def test_attachments_stay_within_their_bound(
    limits: engine.Limits, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(segment_files, "MAX_ATTACHED", 3)
    files = [_segment(limits, tmp_path / f"s{n}.duckdb", n + 1) for n in range(4)]
    assert _count(limits, files[:3]) == [1, 2, 3]
    mine = [p for p in segment_files._attached if p.parent == tmp_path]
    assert len(mine) == 3  # at the bound: all kept
    assert _count(limits, files[3:]) == [4]
    mine = [p for p in segment_files._attached if p.parent == tmp_path]
    assert len(mine) == 3
    assert files[0] not in mine
    assert len(segment_files._attached) <= 3
    assert _count(limits, files) == [1, 2, 3, 4]  # a query may read more than the bound


def test_the_manifest_cache_stays_within_its_bound(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(manifests, "MAX_CACHED_MANIFESTS", 3)
    monkeypatch.setattr(manifests, "_manifests", {})
    files = []
    for n in range(4):
        segment = tmp_path / f"hour-{n}.duckdb"
        segment.write_bytes(b"x" * n)
        manifests.manifest_path(segment).write_bytes(Manifest(columns={f'["k{n}"]': "t"}).to_json())
        files.append(segment)
    for segment in files[:3]:
        assert manifests.read_manifest(segment) is not None
    assert len(manifests._manifests) == 3  # at the bound
    found = manifests.read_manifest(files[3])
    assert found is not None
    assert list(found.columns) == ['["k3"]']
    assert len(manifests._manifests) == 1  # one past: cleared whole, then this one
