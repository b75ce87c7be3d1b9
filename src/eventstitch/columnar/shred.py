"""Property paths as typed columns of a segment, the way PostHog materialises hot properties:
each leaf path (keys through objects only) becomes up to three columns, so a query on a path
reads one column instead of parsing every event's JSON.

- `t_<id>`: the value as canonical JSON text (sorted keys), what groups and distinct counts
  compare, so `1`, `1.0`, `true` and `"1"` stay apart as in the Python scan;
- `i_<id>`: the value when it is a JSON integer (exact, signed 64-bit as stored);
- `f_<id>`: the value when it is a JSON float.

A segment's manifest says which paths it holds as columns, which paths held an object (a
grouping by them needs the object's JSON) and which held an array (a path through them may
index it). A query reads a path from a segment only when the manifest says the column is
exact there: held, or certainly absent. Anything else falls back to another engine.

The id of a path is a hash of its keys, so no client text is ever spliced into SQL.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventstitch import paths
from eventstitch.storage.records import PropertyPath

MANIFEST_VERSION = 2
"""The layout of segments: 2 has `received_ms` and typed columns."""
TRACKED_FACTOR = 4
"""How many distinct paths a segment write tracks, as a multiple of the columns it keeps; past
it the segment is marked incomplete (a payload with a fresh key per event cannot grow memory)."""


def key_of(path: PropertyPath) -> str | None:
    """A query path as a manifest key (its keys as a JSON list), or None when it has `[*]`
    (served by the scan). An index segment is the same key on an object; through an array the
    manifest marks the path unservable."""
    if paths.has_each(path):
        return None
    return orjson.dumps([str(s) for s in path]).decode()


def column_id(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def canonical(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


MISSING = object()
"""No value at a path (a JSON null is a value)."""


def typed_columns(cid: str, value: Any) -> dict[str, Any]:
    """The columns of one value: its canonical text, and the integer or float it is."""
    if value is MISSING:
        return {}
    out: dict[str, Any] = {f"t_{cid}": canonical(value)}
    if isinstance(value, int) and not isinstance(value, bool):
        out[f"i_{cid}"] = value
    elif isinstance(value, float):
        out[f"f_{cid}"] = value
    return out


@dataclass(slots=True)
class Manifest:
    """What one segment holds, as saved next to it."""

    columns: dict[str, str] = field(default_factory=dict)
    """Manifest key → which typed columns exist: a string of `t`, `i`, `f`."""
    inner: set[str] = field(default_factory=set)
    arrays: set[str] = field(default_factory=set)
    complete: bool = True
    """Every leaf path met is a column (else a path not held may still be somewhere)."""
    shapes: bool = True
    """Every path that held an object or an array is recorded (else no path can be read)."""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": MANIFEST_VERSION,
                "columns": self.columns,
                "inner": sorted(self.inner),
                "arrays": sorted(self.arrays),
                "complete": self.complete,
                "shapes": self.shapes,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest | None:
        """The manifest, or None for a segment of another layout (written again by a rebuild
        from scratch; until then the scan answers)."""
        data = orjson.loads(raw)
        if data.get("version") != MANIFEST_VERSION:
            return None
        return cls(
            columns=dict(data["columns"]),
            inner=set(data["inner"]),
            arrays=set(data["arrays"]),
            complete=bool(data["complete"]),
            shapes=bool(data["shapes"]),
        )

    def reads(self, path: PropertyPath) -> bool | None:
        """True when the path is a column here, False when it is certainly absent from every
        event, None when the segment cannot say exactly (the query needs another engine)."""
        key = key_of(path)
        if key is None or not self.shapes or key in self.inner:
            return None
        keys = [str(s) for s in path]
        if any(orjson.dumps(keys[:n]).decode() in self.arrays for n in range(1, len(keys))):
            return None
        if key in self.columns:
            return True
        return False if self.complete else None


def merged(manifests: list[Manifest]) -> Manifest:
    """The manifest of segments put together: a path stays a column only where every part
    holds it or certainly lacks it (a part that dropped it would read as absent)."""
    union: dict[str, str] = {}
    for manifest in manifests:
        for key, kinds in manifest.columns.items():
            union[key] = "".join(sorted(set(union.get(key, "")) | set(kinds)))
    kept = {
        key: kinds
        for key, kinds in union.items()
        if all(key in m.columns or (m.complete and m.shapes) for m in manifests)
    }
    return Manifest(
        columns=kept,
        inner=set().union(*(m.inner for m in manifests)),
        arrays=set().union(*(m.arrays for m in manifests)),
        complete=all(m.complete for m in manifests) and len(kept) == len(union),
        shapes=all(m.shapes for m in manifests),
    )


def _names_of(key: str) -> tuple[str, str, str, str]:
    """A manifest key and the names of its typed columns (see `typed_columns`)."""
    cid = column_id(key)
    return key, f"t_{cid}", f"i_{cid}", f"f_{cid}"


@dataclass(slots=True)
class Collector:
    """Shreds events while a segment is written: the columns of each event, and what the
    manifest will say once the kept columns are chosen (the most frequent `max_paths`)."""

    max_paths: int
    seen: Counter[str] = field(default_factory=Counter)
    kinds: dict[str, set[str]] = field(default_factory=dict)
    inner: set[str] = field(default_factory=set)
    arrays: set[str] = field(default_factory=set)
    overflowed: bool = False
    shapes_overflowed: bool = False
    _names: dict[tuple[str, ...], tuple[str, str, str, str]] = field(default_factory=dict)
    """Each path met: its manifest key and its three column names (a hash each, computed
    once per segment instead of once per value: half the time of a segment write)."""

    def columns(self, properties: Any) -> dict[str, Any]:
        """The typed columns of one event's properties, keyed by column name."""
        out: dict[str, Any] = {}
        if isinstance(properties, dict):
            self._walk(properties, (), out)
        return out

    def _walk(self, node: dict[str, Any], prefix: tuple[str, ...], out: dict[str, Any]) -> None:
        # Values come from decoded JSON: exact types, so `type(...) is` (a bool is no int).
        limit = self.max_paths * TRACKED_FACTOR
        names, seen, all_kinds = self._names, self.seen, self.kinds
        for name, value in node.items():
            path = (*prefix, name)
            named = names.get(path)
            if named is None:
                named = _names_of(orjson.dumps(path).decode())
                if len(names) < limit:  # as bounded as the paths tracked
                    names[path] = named
            key, text, integer, number = named
            kind = type(value)
            if kind is dict:
                self._note(self.inner, key)
                self._walk(value, path, out)
                continue
            if kind is list:
                self._note(self.arrays, key)
            if key not in seen and len(seen) >= limit:
                self.overflowed = True
                continue
            seen[key] += 1
            kinds = all_kinds.get(key)
            if kinds is None:
                kinds = all_kinds[key] = set()
            if kind is str:
                out[text] = orjson.dumps(value).decode()
            elif kind is int:
                out[text] = str(value)  # orjson's text of an integer, without the call
                out[integer] = value
                kinds.add("i")
            elif kind is float:
                out[text] = canonical(value)
                out[number] = value
                kinds.add("f")
            elif kind is bool:
                out[text] = "true" if value else "false"
            elif value is None:
                out[text] = "null"
            else:  # an array
                out[text] = canonical(value)

    def _note(self, where: set[str], key: str) -> None:
        if key in where:
            return
        if len(where) >= self.max_paths * TRACKED_FACTOR:
            self.shapes_overflowed = True
            return
        where.add(key)

    def manifest(self) -> Manifest:
        """The kept columns (the most frequent paths) and what else the segment can say."""
        kept = [key for key, _ in self.seen.most_common(self.max_paths)]
        return Manifest(
            columns={key: "t" + "".join(sorted(self.kinds[key])) for key in kept},
            inner=set(self.inner),
            arrays=set(self.arrays),
            complete=not self.overflowed and len(kept) == len(self.seen),
            shapes=not self.shapes_overflowed,
        )


def column_types(manifest: Manifest) -> dict[str, str]:
    """The DuckDB type of each kept column, to read them from the staged lines."""
    types: dict[str, str] = {}
    for key, kinds in manifest.columns.items():
        cid = column_id(key)
        types[f"t_{cid}"] = "VARCHAR"
        if "i" in kinds:
            types[f"i_{cid}"] = "BIGINT"
        if "f" in kinds:
            types[f"f_{cid}"] = "DOUBLE"
    return types
