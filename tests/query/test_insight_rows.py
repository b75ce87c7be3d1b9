"""The rows of an insights answer: `render` ranks and labels each distinct value once, and
must give exactly the rows and the order that ranking and labelling every row does (the rule
in `sort_value` and `buckets.label`), whatever the mix of keys: JSON values of any kind,
time buckets in any zone, booleans, the `other` of `top`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstitch.query import buckets
from eventstitch.query.insight_params import parse_query
from eventstitch.query.insight_rows import (
    OTHER,
    Group,
    Key,
    metric_value,
    render,
    render_counts,
    row_order,
)

HOUR = 3_600_000

json_values = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-2, 2)
    | st.text(alphabet="ab1", max_size=2)
    | st.lists(st.integers(0, 1), max_size=2)
)
property_parts = json_values.map(orjson.dumps) | st.just(OTHER)
hour_parts = st.integers(0, 48).map(lambda n: 1_767_225_600_000 + n * HOUR)
day_parts = st.integers(0, 40).map(lambda n: 1_767_225_600_000 + n * 24 * HOUR)
names = st.text(max_size=4)  # types and sources: any text, astral and combining marks too
flag_parts = st.booleans()
ZONES = ["UTC", "Europe/Warsaw", "America/St_Johns", "Asia/Kathmandu"]


def rendered_row_by_row(query: Any, groups: dict[Key, Group], tz: Any) -> list[dict[str, Any]]:
    """The reference: every row ranked and labelled on its own."""
    rows = []
    for key, group in sorted(groups.items(), key=lambda i: tuple(row_order(p) for p in i[0])):
        row: dict[str, Any] = {}
        for dim, part in zip(query.by, key, strict=True):
            if part == OTHER:
                row[dim.label] = "other"
                row["other"] = True
            elif dim.is_time:
                row[dim.label] = buckets.label(datetime.fromtimestamp(part / 1000, tz))
            elif dim.kind == "property":
                row[dim.label] = orjson.loads(part)
            else:
                row[dim.label] = part
        row["count"] = group.count
        row["value"] = metric_value(query, group)
        rows.append(row)
    return rows


PARTS = {"properties.plan": property_parts, "hour": hour_parts, "profile_less": flag_parts}


@pytest.mark.parametrize(
    ("by", "metric"),
    [
        ("properties.plan,hour,profile_less", None),
        ("hour,profile_less", None),  # two dimensions without a property: rendered apart
        ("profile_less,hour", "count_distinct:properties.email"),
        ("hour", None),
    ],
)
@settings(max_examples=150, deadline=None)
@given(data=st.data(), zone=st.sampled_from(ZONES))
def test_rows_are_those_of_ranking_and_labelling_each_row(
    by: str, metric: str | None, data: st.DataObject, zone: str
) -> None:
    query = parse_query(metric=metric, by=by, tz=zone, top=None, comparisons=(), max_groups=1000)
    keys = data.draw(
        st.lists(st.tuples(*(PARTS[name] for name in by.split(","))), max_size=40, unique=True)
    )
    counts = data.draw(st.lists(st.integers(0, 5), min_size=len(keys), max_size=len(keys)))
    tz = buckets.zone(query.tz)
    groups = {
        key: Group(count=n, distinct={str(i) for i in range(n * 3 % 4)} if metric else None)
        for key, n in zip(keys, counts, strict=True)
    }
    rendered, reference = render(query, groups, tz), rendered_row_by_row(query, groups, tz)
    assert [list(row.items()) for row in rendered] == [list(row.items()) for row in reference]


@settings(max_examples=100, deadline=None)
@given(
    keys=st.lists(
        st.sampled_from([b"1", b"1.0", b"0", b"0.0", b"-0.0", b"2", b"null", b'"1"']),
        min_size=2,
        max_size=8,
        unique=True,
    ),
    seed=st.randoms(use_true_random=False),
)
def test_values_that_rank_the_same_come_in_one_order_whatever_order_they_were_found(
    keys: list[bytes], seed: Any
) -> None:
    """1 and 1.0 (0, 0.0 and -0.0) rank the same; an engine may find them in any order (DuckDB
    did), and the answer's rows still come in one order."""
    query = parse_query(
        metric=None, by="properties.plan", tz="UTC", top=None, comparisons=(), max_groups=1000
    )
    tz = buckets.zone("UTC")
    shuffled = list(keys)
    seed.shuffle(shuffled)
    first = render(query, {(k,): Group(count=1) for k in keys}, tz)
    again = render(query, {(k,): Group(count=1) for k in shuffled}, tz)
    assert [repr(row["properties.plan"]) for row in first] == [
        repr(row["properties.plan"]) for row in again
    ]


ROLLUP_PARTS = {"hour": hour_parts, "day": day_parts, "type": names, "source": names}


@pytest.mark.parametrize("by", ["hour,type", "type,hour", "source,day", "type", "day", ""])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_bare_counts_come_in_the_rows_and_order_of_groups(by: str, data: st.DataObject) -> None:
    """The rollup's counts are rendered without an object per group, sorted as plain tuples:
    the same rows, in the same order, as ranking and labelling each row of those groups."""
    query = parse_query(metric=None, by=by, tz="UTC", top=None, comparisons=(), max_groups=1000)
    dims = by.split(",") if by else []
    keys = data.draw(
        st.lists(
            st.tuples(*(ROLLUP_PARTS[name] for name in dims)),
            min_size=0 if dims else 1,
            max_size=40 if dims else 1,
            unique=True,
        )
    )
    counts = {key: data.draw(st.integers(0, 10**12)) for key in keys}
    tz = buckets.zone("UTC")
    rendered = render_counts(query, counts, tz)
    reference = rendered_row_by_row(query, {k: Group(count=n) for k, n in counts.items()}, tz)
    assert [list(row.items()) for row in rendered] == [list(row.items()) for row in reference]
