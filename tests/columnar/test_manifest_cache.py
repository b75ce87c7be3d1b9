"""The manifest cache of a reading process: a segment written again under its name is read
anew, and the cache stays within its bound (at it, and one past it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eventstitch.columnar import manifests
from eventstitch.columnar.shred import Manifest


def _segment(where: Path, name: str, column: str, size: int) -> Path:
    segment = where / name
    segment.unlink(missing_ok=True)
    segment.write_bytes(b"x" * size)
    manifests.manifest_path(segment).write_bytes(Manifest(columns={column: "t"}).to_json())
    return segment


def test_a_segment_written_again_with_the_same_size_is_read_anew(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(manifests, "_manifests", {})
    first = _segment(tmp_path, "hour-0.parquet", '["plan"]', 100)
    found = manifests.read_manifest(first)
    assert found is not None
    assert list(found.columns) == ['["plan"]']
    again = _segment(tmp_path, "hour-0.parquet", '["amount"]', 100)
    os.utime(again, ns=(1, 1))  # even a modification time of its own
    found = manifests.read_manifest(again)
    assert found is not None
    assert list(found.columns) == ['["amount"]']


def test_the_manifest_cache_stays_within_its_bound(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(manifests, "MAX_CACHED_MANIFESTS", 3)
    monkeypatch.setattr(manifests, "_manifests", {})
    files = [_segment(tmp_path, f"hour-{n}.parquet", f'["k{n}"]', n) for n in range(4)]
    for segment in files[:3]:
        assert manifests.read_manifest(segment) is not None
    assert len(manifests._manifests) == 3  # at the bound: all kept
    found = manifests.read_manifest(files[3])
    assert found is not None
    assert list(found.columns) == ['["k3"]']
    assert len(manifests._manifests) == 1  # one past: cleared whole, then this one
