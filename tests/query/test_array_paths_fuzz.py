"""Property: paths with an index or `[*]` find the same values on SQLite and PostgreSQL as the
documented rule (docs/api.md, "Property paths"), never with a 5xx. Documents are small JSON trees
whose objects use the keys `a`, `0` and `1`, so an index meets both arrays and objects keyed by
digits; answers are compared with `paths.values`, the rule's reading in Python."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.paths import EACH, Path, values
from eventstitch.query.schemas import parse_property_path
from eventstitch.storage.records import property_label
from tests.conftest import create_source
from tests.query.test_property_keys_fuzz import ask, clients, matches, same_number, written

pytestmark = pytest.mark.postgres
__all__ = ["clients"]  # the module's fixture, shared

scalars = st.one_of(
    st.text(alphabet="a1 ", max_size=2), st.integers(-2, 2), st.booleans(), st.none()
)
trees = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "0", "1"]), children, max_size=3)
    ),
    max_leaves=10,
)
documents = st.dictionaries(st.sampled_from(["a", "0", "1"]), trees, max_size=3)
segments = st.sampled_from(["a", "0", "1", 0, 1])


@st.composite
def array_paths(draw: st.DrawFn) -> Path:
    path: list[Any] = draw(st.lists(segments, min_size=1, max_size=3))
    if draw(st.booleans()):
        path.insert(draw(st.integers(1, len(path))), EACH)
    return tuple(path)


_sources = itertools.count()


def same_key(key: Any) -> Any:
    """A group key as compared: objects, in arrays too, with their keys in one order
    (PostgreSQL keeps objects with their keys sorted by length, SQLite as written; the same
    object either way)."""
    if isinstance(key, str) and key.startswith(("{", "[")):
        try:
            return json.dumps(json.loads(key), sort_keys=True)
        except ValueError:
            return key
    return same_number(key)


def found(document: dict[str, Any], path: Path) -> list[Any]:
    """What the rule reads at the path: every element's value under `[*]`, else one or none."""
    return list(values(document, path))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(path=array_paths(), stored=st.lists(documents, min_size=1, max_size=4), data=st.data())
def test_array_paths_find_the_same_values_on_both_backends(
    clients: dict[str, TestClient], path: Path, stored: list[dict[str, Any]], data: st.DataObject
) -> None:
    label = property_label(path)
    assert parse_property_path(label) == path
    seen = [
        written(v) for doc in stored for v in found(doc, path) if not isinstance(v, list | dict)
    ]
    asked = data.draw(st.sampled_from(seen) if seen else st.just("a"), label="asked")
    source_id = f"arrays-{next(_sources)}"
    answers: dict[str, Any] = {}
    for backend, client in clients.items():
        create_source(client, id=source_id)
        ids = []
        for document in stored:
            response = client.post(f"/collect/k/{source_id}", json=document)
            assert response.status_code == 200, (backend, response.text)
            ids.append(response.json()["id"])
        events = ask(client, "/api/events", {"source_id": source_id, label: asked})["events"]
        matched = {ids.index(event["id"]) for event in events}
        expected = {
            i for i, doc in enumerate(stored) if any(matches(v, asked) for v in found(doc, path))
        }
        assert matched == expected, (backend, label, asked)
        counts = ask(
            client, "/api/insights/counts", {"source_id": source_id, "by": label, "distinct": label}
        )
        assert counts["total"] == len(stored)
        assert sum(row["count"] for row in counts["rows"]) >= len(stored)
        answers[backend] = (
            matched,
            sorted(
                ({k: same_key(v) for k, v in row.items()} for row in counts["rows"]),
                key=repr,
            ),
        )
    assert answers["sqlite"] == answers["postgres"], label
