"""A source's shaping applied to a parsed delivery: form bodies read as the sender meant them,
one event per array element, values taken from a header or a path, paths redacted.

Pure functions, no I/O: a refusal is a domain error naming the field, so nothing is stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from eventstitch.errors import BadRequest, PayloadTooLarge, clip
from eventstitch.ingest.parsing import NON_OBJECT_KEY, nesting_depth, parse_json
from eventstitch.storage.records import Shaping

HEADER_PREFIX = "header:"
SPLIT_ALL = "$"
DELIVERY_KEY = "_delivery"
"""Where an element split from an array at a path keeps the delivery's other fields."""

_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def path_of(spec: str) -> tuple[str, ...]:
    return tuple(spec.split("."))


def find(spec: str, headers: Mapping[str, str], properties: Mapping[str, Any]) -> Any:
    """The value a `header:<Name>` or dotted-path spec points at, or None."""
    if spec.startswith(HEADER_PREFIX):
        return headers.get(spec[len(HEADER_PREFIX) :].lower())
    value: Any = properties
    for key in path_of(spec):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def read_form(properties: dict[str, Any], shaping: Shaping, *, max_depth: int) -> dict[str, Any]:
    """A form body as the source says its sender means it: bracket keys nested, and the JSON
    held in one field parsed into the properties (the other fields kept beside it)."""
    if shaping.bracket_keys:
        properties = nest_bracket_keys(properties, max_depth=max_depth)
    field = shaping.form_json_field
    if field is not None and isinstance(properties.get(field), str):
        try:
            value = parse_json(properties[field].encode(), None, max_depth=max_depth)
        except BadRequest as error:
            raise BadRequest(
                f"form field {clip(field, 40)!r} does not hold JSON: {error.message}",
                errors=[{"field": f"body.{clip(field, 40)}", **error.errors[0]}],
                reason=error.reason,
            ) from None
        rest = {k: v for k, v in properties.items() if k != field}
        parsed = value if isinstance(value, dict) else {NON_OBJECT_KEY: value}
        properties = {**rest, **parsed}
    return properties


def nest_bracket_keys(form: dict[str, Any], *, max_depth: int) -> dict[str, Any]:
    """`data[merges][EMAIL]=x` as `{"data": {"merges": {"EMAIL": "x"}}}`; a key ending in
    `[]` makes a list. A key that would clash with another (`a=1` and `a[b]=2`) stays as sent."""
    nested: dict[str, Any] = {}
    literal: dict[str, Any] = {}
    for key, value in form.items():
        match = _BRACKETS.match(key)
        if match is None:
            literal[key] = value
            continue
        parts = [match.group(1), *_SEGMENT.findall(match.group(2))]
        if len(parts) > max_depth:
            raise BadRequest(
                f"form key {clip(key, 60)!r} nests deeper than the limit of {max_depth}",
                errors=[{"field": "body", "key": clip(key, 60), "limit": max_depth}],
                reason="body_too_deep",
            )
        if not _place(nested, parts, value):
            literal[key] = value
    for key, value in literal.items():
        nested.setdefault(key, value)
    return nested


def _place(tree: dict[str, Any], parts: list[str], value: Any) -> bool:
    """Put `value` at `parts` inside `tree`; False when an existing value is in the way."""
    node = tree
    for part in parts[:-2] if parts[-1] == "" else parts[:-1]:
        if part == "":
            return False  # `a[][b]`: a list of objects is not read from a form
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    if parts[-1] == "":
        last = parts[-2]
        items = value if isinstance(value, list) else [value]
        current = node.setdefault(last, [])
        if not isinstance(current, list):
            return False
        current.extend(items)
        return True
    if parts[-1] in node:
        return False
    node[parts[-1]] = value
    return True


def split(properties: dict[str, Any], spec: str, *, limit: int) -> list[dict[str, Any]]:
    """One properties object per element of the array the spec names (`$`: the body itself);
    an element split from a path keeps the delivery's other fields under `_delivery`."""
    if spec == SPLIT_ALL:
        items, rest = properties.get(NON_OBJECT_KEY), None
    else:
        path = path_of(spec)
        items = find(spec, {}, properties)
        rest = _without(properties, path)
    if not isinstance(items, list):
        raise BadRequest(
            f"the source splits deliveries at {clip(spec, 60)!r}, and this one has no array there",
            errors=[{"field": "shaping.split", "path": clip(spec, 60)}],
            reason="split_not_array",
        )
    if len(items) > limit:
        raise PayloadTooLarge(
            f"the delivery holds {len(items)} events; one delivery may make at most {limit}",
            errors=[{"field": "shaping.split", "count": len(items), "limit": limit}],
            reason="split_too_large",
        )
    events = []
    for item in items:
        event = dict(item) if isinstance(item, dict) else {NON_OBJECT_KEY: item}
        if rest:
            event[DELIVERY_KEY] = rest
        events.append(event)
    return events


def _without(value: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of `value` without the value at `path` (copied only along the path)."""
    head, *tail = path
    if head not in value:
        return value
    if not tail:
        return {k: v for k, v in value.items() if k != head}
    child = value[head]
    if not isinstance(child, dict):
        return value
    return {**value, head: _without(child, tuple(tail))}


def redact(properties: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """The properties without the values at `paths` (the input is not changed)."""
    for spec in paths:
        properties = _without(properties, path_of(spec))
    return properties


def redact_delivery(properties: dict[str, Any], shaping: Shaping) -> dict[str, Any]:
    """A whole delivery with the source's redactions applied to each event it would make,
    for keeping a refused delivery without the values the events would never hold."""
    if not shaping.redact:
        return properties
    if shaping.split is None:
        return redact(properties, shaping.redact)
    own = tuple(p for p in shaping.redact if not p.startswith(DELIVERY_KEY + "."))
    outer = tuple(p[len(DELIVERY_KEY) + 1 :] for p in shaping.redact if p not in own)
    path: tuple[str, ...] = (NON_OBJECT_KEY,)
    if shaping.split == SPLIT_ALL:
        items, rest = properties.get(NON_OBJECT_KEY), properties
    else:
        path = path_of(shaping.split)
        items, rest = find(shaping.split, {}, properties), redact(properties, outer)
    if not isinstance(items, list):
        return redact(rest, own)
    cleaned = [redact(i, own) if isinstance(i, dict) else i for i in items]
    return _replace(rest, path, cleaned)


def _replace(value: dict[str, Any], path: tuple[str, ...], new: Any) -> dict[str, Any]:
    head, *tail = path
    if not tail:
        return {**value, head: new}
    child = value.get(head)
    return {**value, head: _replace(child if isinstance(child, dict) else {}, tuple(tail), new)}


def kept_body(properties: dict[str, Any], shaping: Shaping, *, max_depth: int) -> bytes:
    """What the quarantine keeps of a refused delivery to a source with redactions: the
    parsed delivery without them, as JSON (so a replay reads it back the same way)."""
    value = redact_delivery(properties, shaping)
    if nesting_depth(value, stop_after=max_depth) > max_depth:
        return b""
    if set(value) == {NON_OBJECT_KEY}:
        return orjson.dumps(value[NON_OBJECT_KEY])
    return orjson.dumps(value)
