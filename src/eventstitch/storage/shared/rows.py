"""Source and event rows as records and back, for either backend (its `Dialect` encodes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from eventstitch.storage.records import EventRecord, SourceRecord
from eventstitch.storage.shared.codec import (
    rate_limit_from_json,
    rate_limit_to_json,
    rules_from_json,
    rules_to_json,
    shaping_from_json,
    shaping_to_json,
    signature_from_json,
    signature_to_json,
    source_field_to_json,
    traits_from_json,
    traits_to_json,
)
from eventstitch.storage.shared.dialect import Dialect

SOURCE_COLUMNS = (
    "id, name, kind, enabled, description, tags, created_ms, updated_ms, identification, traits,"
    " delivery_id_path, signature, rate_limit, shaping, write_key, previous_write_key,"
    " previous_key_until_ms"
)
SOURCE_FIELDS = frozenset(
    {
        "name",
        "kind",
        "enabled",
        "description",
        "tags",
        "identification",
        "traits",
        "delivery_id_path",
        "signature",
        "rate_limit",
        "shaping",
        "write_key",
        "previous_write_key",
        "previous_key_until_ms",
    }
)
"""What an update may change."""
JSON_SOURCE_FIELDS = frozenset(
    {"tags", "identification", "traits", "signature", "rate_limit", "shaping"}
)


def source_from_row(row: Sequence[Any]) -> SourceRecord:
    """A row of `SOURCE_COLUMNS`, JSON as text, as a record."""
    return SourceRecord(
        id=row[0],
        name=row[1],
        kind=row[2],
        enabled=bool(row[3]),
        description=row[4],
        tags=tuple(orjson.loads(row[5])),
        created_ms=row[6],
        updated_ms=row[7],
        identification=rules_from_json(orjson.loads(row[8])),
        traits=traits_from_json(orjson.loads(row[9])),
        delivery_id_path=tuple(row[10].split(".")) if row[10] else (),
        signature=signature_from_json(orjson.loads(row[11])) if row[11] else None,
        rate_limit=rate_limit_from_json(orjson.loads(row[12])) if row[12] else None,
        shaping=shaping_from_json(orjson.loads(row[13])) if row[13] else None,
        write_key=row[14],
        previous_write_key=row[15],
        previous_key_until_ms=row[16],
    )


def source_row(d: Dialect, source: SourceRecord) -> tuple[Any, ...]:
    """The bound values of a source's row, in the order of `SOURCE_COLUMNS`."""
    return (
        d.text(source.id),
        d.text(source.name),
        source.kind,
        d.flag(source.enabled),
        d.text(source.description),
        d.json(list(source.tags)),
        source.created_ms,
        source.updated_ms,
        d.json(rules_to_json(source.identification)),
        d.json(traits_to_json(source.traits)),
        d.text(".".join(source.delivery_id_path)),
        d.json_or_null(signature_to_json(source.signature)),
        d.json_or_null(rate_limit_to_json(source.rate_limit)),
        d.json_or_null(shaping_to_json(source.shaping)),
        source.write_key,
        source.previous_write_key,
        source.previous_key_until_ms,
    )


def source_changes(d: Dialect, changes: dict[str, Any]) -> dict[str, Any]:
    """An update's changed fields as bound values; refuses a name that is not a field."""
    unknown = set(changes) - SOURCE_FIELDS
    if unknown:
        raise ValueError(f"not source fields: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key, change in changes.items():
        value = source_field_to_json(key, change)
        if key in JSON_SOURCE_FIELDS:
            values[key] = d.json_or_null(value)
        elif key == "enabled":
            values[key] = d.flag(value)
        else:
            values[key] = d.text(value) if isinstance(value, str) else value
    return values


def event_from_row(row: Sequence[Any]) -> EventRecord:
    """A row of id, type, source_id, received_ms, profile_less, profile_id, session_id,
    properties, context (JSON text), converted_ms, converted_by as a record."""
    return EventRecord(
        id=row[0],
        type=row[1],
        source_id=row[2],
        received_ms=row[3],
        profile_less=bool(row[4]),
        profile_id=row[5],
        session_id=row[6],
        properties=orjson.loads(row[7]),
        context=orjson.loads(row[8]),
        converted_ms=row[9],
        converted_by=row[10],
    )


def sources_after_sql(d: Dialect, after: tuple[int, str] | None) -> tuple[str, list[Any]]:
    """The WHERE clause of a page of sources after (created_ms, id), oldest first."""
    if after is None:
        return "", []
    return (
        f" WHERE created_ms > {d.mark} OR (created_ms = {d.mark} AND id > {d.mark})",
        [after[0], after[0], after[1]],
    )
