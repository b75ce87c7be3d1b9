"""Payload paths, one grammar for filters, groupings and source rules: parsing, writing back,
and reading a path's values out of a payload in Python (identification and trait rules).

A path is keys joined by dots. A key is written as it is, or as a JSON string when it would not
read back as written. A segment of digits without leading zeros (`0`, `12`) indexes an array
and is that key on an object; a quoted `"0"` is always a key. `[*]` after a key means any
element of the array that key holds.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from typing import Any

import orjson


class Each(enum.Enum):
    """Any element of an array (`[*]`)."""

    ELEMENT = "[*]"


EACH = Each.ELEMENT
Segment = str | int | Each
"""A key (always a key), an index (an array's element, or that key on an object), or `[*]`."""
Path = tuple[Segment, ...]

MAX_INDEX = 10_000
"""The largest index a path may hold: a larger number is a key to quote."""
MAX_EACH = 1
"""How many `[*]` one path may hold: each one multiplies the values an event yields."""

_INDEX = re.compile(r"0|[1-9][0-9]*")
_PLAIN_KEY = re.compile(r'[^."\x00][^.\x00]*')
_QUOTED_KEY = json.JSONDecoder(strict=False)
_EACH_TEXT = "[*]"


class PathError(ValueError):
    """A path that is not written by the grammar, or beyond a bound; the message says which."""


def parse(text: str, *, max_keys: int, max_key_chars: int) -> Path:
    """The segments of `a.b."c.d".items[*].0`, within the bounds, or PathError."""
    segments: list[Segment] = []
    at = 0
    while True:
        if text.startswith('"', at):
            try:
                key, at = _QUOTED_KEY.raw_decode(text, at)
                key.encode()  # a lone surrogate (`"\ud800"`) is no text
            except (ValueError, UnicodeEncodeError):
                raise PathError("has a malformed quoted key") from None
            segments.append(key)
        else:
            plain = _PLAIN_KEY.match(text, at)
            if plain is None:
                raise PathError("has an empty or malformed key")
            key, at = plain.group(), plain.end()
            eaches = 0
            while key.endswith(_EACH_TEXT):
                key, eaches = key[: -len(_EACH_TEXT)], eaches + 1
            if not key and eaches:
                raise PathError("has [*] with no key before it")
            segments.append(_plain_segment(key))
            segments += [EACH] * eaches
        while text.startswith(_EACH_TEXT, at):
            segments.append(EACH)
            at += len(_EACH_TEXT)
        if at == len(text):
            break
        if text[at] != ".":
            raise PathError("has something other than a dot after a quoted key")
        at += 1
    _check_bounds(segments, max_keys=max_keys, max_key_chars=max_key_chars)
    return tuple(segments)


def _plain_segment(key: str) -> Segment:
    if not _INDEX.fullmatch(key):
        return key
    index = int(key)
    if index > MAX_INDEX:
        raise PathError(f'has the index {key}, over {MAX_INDEX} (a key of digits is "{key}")')
    return index


def _check_bounds(segments: list[Segment], *, max_keys: int, max_key_chars: int) -> None:
    keys = [s for s in segments if s is not EACH]
    if len(keys) > max_keys:
        raise PathError(f"has more than {max_keys} keys")
    if segments.count(EACH) > MAX_EACH:
        raise PathError(f"has more than {MAX_EACH} [*]")
    for key in keys:
        if isinstance(key, str) and len(key) > max_key_chars:
            raise PathError(f"has a key longer than {max_key_chars} characters")
        if isinstance(key, str) and "\x00" in key:
            raise PathError("has a key with U+0000, which no stored key keeps")


def label(path: Path) -> str:
    """A path as a client writes it: `parse(label(p)) == p`. A key that would not read back as
    written (empty, opening with `"`, with a dot, a comma, U+0000, space at either end, ending
    with `[*]`, or digits that would read as an index) is written as a JSON string."""
    out: list[str] = []
    for segment in path:
        if segment is EACH:
            if not out:
                out.append("")
            out[-1] += _EACH_TEXT
        elif isinstance(segment, int):
            out.append(str(segment))
        else:
            out.append(orjson.dumps(segment).decode() if _needs_quotes(segment) else segment)
    return ".".join(out)


def _needs_quotes(key: str) -> bool:
    return (
        not key
        or key.startswith('"')
        or key != key.strip()
        or key.endswith(_EACH_TEXT)
        or _INDEX.fullmatch(key) is not None
        or any(c in key for c in ".,\x00")
    )


def has_each(path: Path) -> bool:
    return EACH in path


def is_keys(path: Path) -> bool:
    """Whether every segment is a key: such a path has each backend's fastest form."""
    return all(isinstance(s, str) for s in path)


def values(payload: Any, path: Path) -> Iterator[Any]:
    """Every value at `path` in a payload: one at most without `[*]`, one per element holding
    the rest of the path with it. Missing keys yield nothing."""
    if not path:
        yield payload
        return
    head, rest = path[0], path[1:]
    if head is EACH:
        if isinstance(payload, list):
            for element in payload:
                yield from values(element, rest)
        return
    if isinstance(head, int) and isinstance(payload, list):
        if head < len(payload):
            yield from values(payload[head], rest)
        return
    if isinstance(payload, dict):
        key = str(head)
        if key in payload:
            yield from values(payload[key], rest)


def lookup(payload: Any, path: Path) -> Any:
    """The value at a path without `[*]`, or None when it is missing."""
    return next(values(payload, path), None)


RULE_MAX_KEYS = 16
RULE_MAX_KEY_CHARS = 128


def parse_rule(text: str) -> Path:
    """A source rule's path (identification or trait): the same grammar, at most 16 keys."""
    return parse(text, max_keys=RULE_MAX_KEYS, max_key_chars=RULE_MAX_KEY_CHARS)


def stored_rule(text: str) -> Path:
    """A rule path as stored. One stored before this grammar (a key opening with `"`, say) that
    it does not read is taken as it was then: keys split at dots."""
    try:
        return parse_rule(text)
    except PathError:
        return tuple(text.split("."))
