"""Shredding properties into typed columns (columnar/shred.py): each leaf path reached through
objects gives its canonical JSON text, and its integer or float, under the names a query
derives from the path alone (Hypothesis); what the collector remembers of paths is bounded."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from eventstitch.columnar.shred import TRACKED_FACTOR, Collector, column_id, key_of, typed_columns

KEYS = ["a", "b", "é", "x.y", "[0]", "", "n"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=10,
)


def _leaves(
    node: dict[str, Any], prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, value in node.items():
        if isinstance(value, dict):
            found += _leaves(value, (*prefix, name))
        else:
            found.append(((*prefix, name), value))
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(KEYS), values, max_size=5), max_size=5))
def test_each_leaf_gives_the_columns_a_query_names_from_its_path(events: list[Any]) -> None:
    collector = Collector(max_paths=256)
    for properties in events:
        expected: dict[str, Any] = {}
        for path, value in _leaves(properties):
            key = key_of(path)
            assert key is not None
            expected |= typed_columns(column_id(key), value)
        assert collector.columns(properties) == expected
    manifest = collector.manifest()
    for properties in events:
        for path, value in _leaves(properties):
            kinds = manifest.columns[key_of(path) or ""]
            assert kinds[0] == "t"
            if isinstance(value, int) and not isinstance(value, bool):
                assert "i" in kinds
            if isinstance(value, float):
                assert "f" in kinds


def test_paths_remembered_are_bounded_by_the_paths_tracked() -> None:
    collector = Collector(max_paths=2)
    for n in range(100):
        collector.columns({f"key{n}": n, "nested": {f"inner{n}": n}})
    limit = 2 * TRACKED_FACTOR
    assert len(collector.seen) <= limit
    assert len(collector._names) <= limit
    assert collector.manifest().complete is False
