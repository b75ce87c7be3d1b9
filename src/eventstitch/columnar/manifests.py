"""Segment manifests on disk: the file beside each segment, read once per process (a segment
file is never changed in place) into a bounded cache."""

from __future__ import annotations

from pathlib import Path

from eventstitch.columnar.shred import Manifest

MANIFEST_SUFFIX = ".manifest.json"

MAX_CACHED_MANIFESTS = 4096
_manifests: dict[tuple[str, int, int, int], Manifest] = {}
"""Manifests read, by segment file and its inode, modification time and size (a segment
written again under its name is another file, whose size alone may repeat), so one read per
file per process;
at most MAX_CACHED_MANIFESTS (parts and hours replaced by larger segments leave entries)."""


def manifest_path(segment: Path) -> Path:
    return segment.with_name(segment.name + MANIFEST_SUFFIX)


def read_manifest(segment: Path) -> Manifest | None:
    """A segment's manifest (cached), or None for one written before paths were columns."""
    try:
        stat = segment.stat()
    except FileNotFoundError:
        return None
    cache_key = (str(segment), stat.st_ino, stat.st_mtime_ns, stat.st_size)
    found = _manifests.get(cache_key)
    if found is None:
        try:
            found = Manifest.from_json(manifest_path(segment).read_bytes())
        except (FileNotFoundError, ValueError, KeyError):
            return None
        if found is None:
            return None
        if len(_manifests) >= MAX_CACHED_MANIFESTS:
            _manifests.clear()  # deleted parts and hours accumulate: start again
        _manifests[cache_key] = found
    return found
