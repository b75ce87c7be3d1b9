"""How rejections travel to and from either backend: the columns, a row's values, a listing's
filter and its writes as SQL (over the backend's `Dialect`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from eventstitch.ids import id_floor
from eventstitch.storage.records import RejectionFilter, RejectionRecord
from eventstitch.storage.shared.dialect import Dialect

_FIELDS = (
    "id, received_ms, route, reason, status, message, errors, source_id, method, path, query,"
    " headers, client, {body}, body_size, body_truncated, replayed_ms, replayed_event_ids"
)
COLUMNS = _FIELDS.format(body="body")
LIST_COLUMNS = _FIELDS.format(body="NULL")
INSERT_COLUMNS = COLUMNS + ", stored_bytes"


ROW_OVERHEAD = 200
"""Bytes a row costs besides its variable columns (fixed columns, index entries: an estimate)."""


def stored_size(row: Sequence[Any]) -> int:
    """The bytes one row of `rejection_row` stores, near enough to bound the table by: its
    variable columns as encoded, plus a fixed overhead."""
    return ROW_OVERHEAD + sum(len(v) for v in row if isinstance(v, str | bytes))


def rejection_row(r: RejectionRecord) -> tuple[Any, ...]:
    """The bound values of one row (columns as in `INSERT_COLUMNS`), JSON encoded."""
    row = _values(r)
    return (*row, stored_size(row))


def _values(r: RejectionRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.received_ms,
        r.route,
        r.reason,
        r.status,
        r.message,
        orjson.dumps(r.errors, default=str).decode(),
        r.source_id,
        r.method,
        r.path,
        r.query,
        orjson.dumps(r.headers).decode(),
        r.client,
        r.body or b"",
        r.body_size,
        int(r.body_truncated),
        r.replayed_ms,
        orjson.dumps(list(r.replayed_event_ids)).decode() if r.replayed_ms is not None else None,
    )


def rejection_from_row(row: Sequence[Any]) -> RejectionRecord:
    """A row of `COLUMNS` (either backend) as a record."""
    return RejectionRecord(
        id=row[0],
        received_ms=row[1],
        route=row[2],
        reason=row[3],
        status=row[4],
        message=row[5],
        errors=orjson.loads(row[6]),
        source_id=row[7],
        method=row[8],
        path=row[9],
        query=row[10],
        headers=orjson.loads(row[11]),
        client=row[12],
        body=bytes(row[13]) if row[13] is not None else None,
        body_size=row[14],
        body_truncated=bool(row[15]),
        replayed_ms=row[16],
        replayed_event_ids=tuple(orjson.loads(row[17])) if row[17] else (),
    )


def filter_sql(
    d: Dialect, rejection_filter: RejectionFilter, before_id: str | None
) -> tuple[str, list[Any]]:
    """The WHERE clause of a listing and its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    for column, values in (
        ("reason", rejection_filter.reasons),
        ("source_id", rejection_filter.source_ids),
    ):
        if values:
            sql, bound = d.in_list(column, values)
            parts.append(sql)
            params += bound
    bounds = (
        (">=", None if rejection_filter.since_ms is None else id_floor(rejection_filter.since_ms)),
        ("<", None if rejection_filter.until_ms is None else id_floor(rejection_filter.until_ms)),
        ("<", None if before_id is None else d.text(before_id)),
    )
    for op, limit in bounds:
        if limit is not None:
            parts.append(f"id {op} {d.mark}")
            params.append(limit)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def drop_totals(lost: Mapping[str, int], deleted: Mapping[str, int]) -> list[tuple[str, int]]:
    """What to add to the drop totals by cause: lost before storage plus deleted by the bounds."""
    totals = dict(lost)
    for cause, n in deleted.items():
        totals[cause] = totals.get(cause, 0) + n
    return [(cause, n) for cause, n in sorted(totals.items()) if n]


def add_drops_sql(d: Dialect) -> str:
    return (
        f"INSERT INTO rejection_drops (cause, total) VALUES ({d.mark}, {d.mark})"
        " ON CONFLICT (cause) DO UPDATE SET total = rejection_drops.total + excluded.total"
    )


def insert_sql(d: Dialect) -> str:
    marks = ", ".join([d.mark] * len(INSERT_COLUMNS.split(",")))
    return f"INSERT INTO rejections ({INSERT_COLUMNS}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"


def over_bytes_sql(d: Dialect) -> str:
    """Delete the oldest rows beyond the byte bound: every row whose running total of stored
    bytes, newest first, passes it."""
    return (
        "DELETE FROM rejections WHERE id IN (SELECT id FROM (SELECT id, SUM(stored_bytes)"
        " OVER (ORDER BY id DESC) AS running FROM rejections) AS newest_first"
        f" WHERE running > {d.mark})"
    )
