"""JSON encodings of record fields that every backend stores as JSON text or JSONB."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventstitch.storage.interfaces import IdentificationRule


def rules_to_json(rules: tuple[IdentificationRule, ...]) -> list[dict[str, Any]]:
    return [
        {
            "path": ".".join(rule.path),
            "kind": rule.kind,
            "create_profile": rule.create_profile,
            "event_types": list(rule.event_types),
        }
        for rule in rules
    ]


def rules_from_json(data: list[dict[str, Any]]) -> tuple[IdentificationRule, ...]:
    return tuple(
        IdentificationRule(
            path=tuple(item["path"].split(".")),
            kind=item["kind"],
            create_profile=bool(item.get("create_profile", False)),
            event_types=tuple(item.get("event_types", ())),
        )
        for item in data
    )


def traits_to_json(traits: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {name: ".".join(path) for name, path in traits.items()}


def traits_from_json(data: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(path.split(".")) for name, path in data.items()}


def source_field_to_json(key: str, value: Any) -> Any:
    """A changed source field as the JSON-able value a backend stores."""
    if key == "tags":
        return list(value)
    if key == "identification":
        return rules_to_json(value)
    if key == "traits":
        return traits_to_json(value)
    if key == "delivery_id_path":
        return ".".join(value)
    return value
