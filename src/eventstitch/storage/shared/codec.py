"""JSON encodings of record fields that every backend stores as JSON text or JSONB."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventstitch.paths import Path, label, stored_rule
from eventstitch.storage.records import IdentificationRule, RateLimit, Shaping, SignatureRule


def rules_to_json(rules: tuple[IdentificationRule, ...]) -> list[dict[str, Any]]:
    return [
        {
            "path": label(rule.path),
            "kind": rule.kind,
            "create_profile": rule.create_profile,
            "event_types": list(rule.event_types),
        }
        for rule in rules
    ]


def rules_from_json(data: list[dict[str, Any]]) -> tuple[IdentificationRule, ...]:
    return tuple(
        IdentificationRule(
            path=stored_rule(item["path"]),
            kind=item["kind"],
            create_profile=bool(item.get("create_profile", False)),
            event_types=tuple(item.get("event_types", ())),
        )
        for item in data
    )


def traits_to_json(traits: Mapping[str, Path]) -> dict[str, str]:
    return {name: label(path) for name, path in traits.items()}


def traits_from_json(data: Mapping[str, str]) -> dict[str, Path]:
    return {name: stored_rule(path) for name, path in data.items()}


def signature_to_json(rule: SignatureRule | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {
        "preset": rule.preset,
        "secrets": list(rule.secrets),
        "header": rule.header,
        "algorithm": rule.algorithm,
        "encoding": rule.encoding,
        "prefix": rule.prefix,
        "tolerance_seconds": rule.tolerance_seconds,
        **({"url": rule.url} if rule.url else {}),
    }


def signature_from_json(data: Mapping[str, Any] | None) -> SignatureRule | None:
    if data is None:
        return None
    return SignatureRule(
        preset=data["preset"],
        secrets=tuple(data["secrets"]),
        header=data.get("header", ""),
        algorithm=data.get("algorithm", "sha256"),
        encoding=data.get("encoding", "hex"),
        prefix=data.get("prefix", ""),
        tolerance_seconds=int(data.get("tolerance_seconds", 300)),
        url=data.get("url", ""),
    )


def rate_limit_to_json(limit: RateLimit | None) -> dict[str, Any] | None:
    return None if limit is None else {"per_second": limit.per_second, "burst": limit.burst}


def rate_limit_from_json(data: Mapping[str, Any] | None) -> RateLimit | None:
    if data is None:
        return None
    return RateLimit(per_second=float(data["per_second"]), burst=int(data.get("burst", 0)))


def shaping_to_json(shaping: Shaping | None) -> dict[str, Any] | None:
    if shaping is None:
        return None
    data: dict[str, Any] = {
        "event_type_from": shaping.event_type_from,
        "split": shaping.split,
        "delivery_id_from": shaping.delivery_id_from,
        "redact": list(shaping.redact),
        "form_json_field": shaping.form_json_field,
        "bracket_keys": shaping.bracket_keys,
    }
    if shaping.preset is not None:
        data["preset"] = shaping.preset
    return data


def shaping_from_json(data: Mapping[str, Any] | None) -> Shaping | None:
    if data is None:
        return None
    return Shaping(
        event_type_from=data.get("event_type_from"),
        split=data.get("split"),
        delivery_id_from=data.get("delivery_id_from"),
        redact=tuple(data.get("redact") or ()),
        form_json_field=data.get("form_json_field"),
        bracket_keys=bool(data.get("bracket_keys", False)),
        preset=data.get("preset"),
    )


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
    if key == "signature":
        return signature_to_json(value)
    if key == "rate_limit":
        return rate_limit_to_json(value)
    if key == "shaping":
        return shaping_to_json(value)
    return value
