"""Time buckets in a zone and the parsing of `by`: properties over any instant and any list of
dimensions (pure functions; no store)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstitch.errors import BadRequest
from eventstitch.query import buckets
from eventstitch.query.insight_params import MAX_DIMENSIONS, TIME_UNITS, parse_by

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
instants = st.integers(0, 4_102_444_800_000)  # 1970 to 2100


@given(ms=instants, unit=st.sampled_from(TIME_UNITS), name=st.sampled_from(ZONES))
def test_an_instant_falls_in_the_bucket_that_floor_gives(ms: int, unit: str, name: str) -> None:
    tz = buckets.zone(name)
    start = buckets.floor(ms, unit, tz)
    after = buckets.following(start, unit, tz)
    assert buckets.to_ms(start) <= ms < buckets.to_ms(after)
    assert buckets.floor(buckets.to_ms(after), unit, tz) == after  # buckets tile the line
    if unit in ("day", "week", "month"):
        assert (start.hour, start.minute) == (0, 0) or name == "Australia/Lord_Howe"


def test_paris_days_across_daylight_saving_last_23_and_25_hours() -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    spring = datetime(2026, 3, 29, 12, tzinfo=paris)
    autumn = datetime(2026, 10, 25, 12, tzinfo=paris)
    for day, hours, label in (
        (spring, 23, "2026-03-29T00:00:00+01:00"),
        (autumn, 25, "2026-10-25T00:00:00+02:00"),
    ):
        start = buckets.floor(buckets.to_ms(day), "day", paris)
        assert buckets.label(start) == label
        length_ms = buckets.to_ms(buckets.following(start, "day", paris)) - buckets.to_ms(start)
        assert length_ms == hours * 3_600_000
        assert buckets.following(start, "day", paris).hour == 0


@given(
    dims=st.lists(
        st.sampled_from(["type", "source", "profile_less", "converted", "properties.a.b"])
        | st.sampled_from(TIME_UNITS),
        max_size=5,
    )
)
def test_by_takes_up_to_three_distinct_dimensions_with_one_time_unit(dims: list[str]) -> None:
    valid = (
        len(dims) <= MAX_DIMENSIONS
        and len(set(dims)) == len(dims)
        and sum(d in TIME_UNITS for d in dims) <= 1
    )
    if valid:
        assert [d.label for d in parse_by(",".join(dims))] == dims
    else:
        with pytest.raises(BadRequest) as refused:
            parse_by(",".join(dims))
        assert refused.value.errors[0]["field"] == "by"
