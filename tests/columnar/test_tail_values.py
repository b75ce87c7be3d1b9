"""The hot tail read as values (`EventStore.values_page`): where the store takes the needed
paths out of the payloads itself (SQLite's `->` for the keys it can name in a path,
PostgreSQL's `#>`, or the exact text it keeps where jsonb would change a payload), each event
is staged as the very line that reading and parsing the whole event gives, for any JSON the
payloads hold (Hypothesis); where it cannot (a key SQLite cannot name), it says so and the
tail is read whole; and an answer over a tail only equals the one computed here in Python."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.columnar import query as columnar
from eventstitch.columnar import segments
from eventstitch.columnar.shred import column_id, key_of
from eventstitch.config import Config
from eventstitch.storage.records import EventFilter, EventRecord, PropertyPath, ValuesRow
from eventstitch.storage.sqlite.queries import json_path
from tests.conftest import create_source, uses_sqlite_file

pytestmark = pytest.mark.postgres

KEYS = ["status", "a.b", "é", "$x", "[0]", "with space", "0", 'q"uote', "back\\slash"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    # What jsonb would change: PostgreSQL keeps these payloads' exact text beside it.
    st.sampled_from(["a\x00b", 1e16, -0.0, 1e300]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
payloads = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
key_paths = st.lists(
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=2).map(tuple),
    min_size=1,
    max_size=3,
    unique=True,
)
_kinds = itertools.count()


def _needed(key_paths: list[PropertyPath]) -> columnar.Needed:
    needed: columnar.Needed = {}
    for path in key_paths:
        key = key_of(path)
        assert key is not None
        needed[column_id(key)] = (path, "tif")
    return needed


def _read(client: TestClient, kind: str, needed: columnar.Needed) -> tuple[Any, Any]:
    """The events of `kind` read whole, and read as values (None when the store cannot)."""
    app = client.app
    assert isinstance(app, EventstitchApp)
    events = app.ctx.storage.events
    only = EventFilter(types=(kind,))
    paths = [path for path, _ in needed.values()]
    records: list[EventRecord] = client.portal.call(  # type: ignore[union-attr]
        functools.partial(events.list_page, only, limit=100, before_id=None)
    )
    rows: list[ValuesRow] | None = client.portal.call(  # type: ignore[union-attr]
        functools.partial(events.values_page, only, paths, limit=100, before_id=None)
    )
    return records, rows


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bodies=st.lists(payloads, min_size=1, max_size=5), paths=key_paths)
def test_values_taken_out_by_the_store_stage_the_lines_of_whole_events(
    client: TestClient, config: Config, bodies: list[dict[str, Any]], paths: list[PropertyPath]
) -> None:
    source = "tail-values"
    if not client.get(f"/api/sources/{source}").is_success:
        create_source(client, id=source, kind="webhook")
    kind = f"kind-{next(_kinds)}"
    for body in bodies:
        answer = client.post(f"/collect/{kind}/{source}", json=body)
        assert answer.status_code == 200, answer.text
    needed = _needed(paths)
    records, rows = _read(client, kind, needed)
    assert len(records) == len(bodies)
    nameable = all(json_path(path) is not None for path, _ in needed.values())
    if uses_sqlite_file(config) and not nameable:
        assert rows is None  # read whole instead
        return
    assert rows is not None
    assert [row[0] for row in rows] == [record.id for record in records]
    ids = list(needed)
    staged = [columnar.tail_line_of_values(row, ids) for row in rows]
    assert staged == [columnar.tail_line(record, needed) for record in records]


def test_an_answer_over_a_tail_only_equals_python(client: TestClient) -> None:
    """Every event in the hot tail (none in a segment): the numbers are those of the stored
    events, whichever way the tail was read."""
    create_source(client, id="shop", kind="webhook")
    bodies = [
        {"plan": plan, "amount": amount, "meta": {"host": host}}
        for plan, amount, host in zip(
            ["free", "pro", "pro", None, "pro", "free"],
            [10, 2.5, -3, 7, "n/a", 1e3],
            ["a", "b", "a", "c", "b", "a"],
            strict=True,
        )
    ]
    for body in bodies:
        assert client.post("/collect/order/shop", json=body).status_code == 200
    app = client.app
    assert isinstance(app, EventstitchApp)
    client.portal.call(  # type: ignore[union-attr]
        functools.partial(segments.rebuild, ctx=app.ctx, from_scratch=True)
    )
    answer = client.get(
        "/api/insights",
        params={"metric": "sum:properties.amount", "by": "properties.meta.host", "type": "order"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["engine"] == "columnar", body
    expected: dict[str, float] = {}
    for event in bodies:
        amount = event["amount"]
        if isinstance(amount, int | float):
            host = event["meta"]["host"]
            expected[host] = expected.get(host, 0) + amount
    got = {row["properties.meta.host"]: row["value"] for row in body["rows"]}
    assert got == expected
