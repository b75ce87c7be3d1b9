"""Turning a raw webhook request into event properties and a request context.

Pure functions, no I/O: each refusal is a domain error that names the problem, so the route can
answer it in the one error shape and nothing is stored.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any
from urllib.parse import parse_qs

import orjson

from eventstitch.errors import BadRequest, NotFound, UnsupportedMediaType, clip

EVENT_TYPE_REGEX = r"^[a-z0-9][a-z0-9._:-]*(/[a-z0-9][a-z0-9._:-]*)*$"
MAX_EVENT_TYPE = 128
"""An event type: segments of `[a-z0-9._:-]` joined by '/', each starting with a letter or a
digit, 128 characters at most in all (Shopify's `orders/create`)."""
EVENT_TYPE_PATTERN = re.compile(EVENT_TYPE_REGEX)
NON_OBJECT_KEY = "_body"
"""Where a JSON body that is not an object (array, string, number...) is kept whole."""

JSON_MEDIA_TYPES = ("application/json", "application/*+json", "text/plain (JSON)")
SUPPORTED_MEDIA_TYPES = (*JSON_MEDIA_TYPES, "application/x-www-form-urlencoded")

_SPACES = re.compile(r"\s+")
# A number that may not fit is found by mapping every digit to "0", "e"/"E" to "e", "+"/"-" to
# "+" and everything else to ".", then searching for 19 digits in a row (an integer that may be
# beyond signed 64 bits) or a three-digit exponent (a float that may overflow or underflow):
# C loops, several times faster than a regular expression.
_NUMBER_SHAPE = bytes(
    0x30 if 0x30 <= i <= 0x39 else 0x65 if i in b"eE" else 0x2B if i in b"+-" else 0x2E
    for i in range(256)
)
_NUMBER_SHAPE_TEXT = str.maketrans({str(d): "0" for d in range(10)} | {"E": "e", "-": "+"})
_LONG_NUMBER_SHAPES = (b"0" * 19, b"e000", b"e+000")
_LONG_NUMBER_SHAPES_TEXT = tuple(shape.decode() for shape in _LONG_NUMBER_SHAPES)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_LOOKING = re.compile(
    r"signature|secret|token|passw|api[-_]?key|write[-_]?key|auth|hmac|credential|session|csrf|private|cookie",
    re.IGNORECASE,
)


COLLECT_PREFIX = "/collect/"


def split_collect_path(path: str) -> tuple[str, str]:
    """`/collect/{event_type}/{source_id}` as (event type, source id), else a 404. The source
    is the last segment and the type everything before it, slashes included: the path is the
    decoded one, so `orders%2Fcreate` and `orders/create` name the same type."""
    event_type, _, source_id = path[len(COLLECT_PREFIX) :].rpartition("/")
    if not event_type or not source_id:
        raise NotFound(
            "expected /collect/{event_type}/{source_id}",
            errors=[{"field": "path", "value": path[:120]}],
            reason="unknown_route",
        )
    return event_type, source_id


def normalise_event_type(raw: str) -> str:
    """Lower-case, trim, runs of whitespace to one dash; refuse anything but segments of
    `[a-z0-9._:-]` joined by '/', each starting with a letter or digit, at most 128 in all."""
    # Event types repeat from request to request: remember the answers (refusals are not
    # remembered, and the memory is bounded).
    value = _EVENT_TYPES.get(raw)
    if value is None:
        value = _normalise_event_type(raw)
        if len(raw) > _CACHED_KEY_CHARS:  # valid only by its spaces: not worth its memory
            return value
        if len(_EVENT_TYPES) >= 4096:
            _EVENT_TYPES.clear()
        _EVENT_TYPES[raw] = value
    return value


_EVENT_TYPES: dict[str, str] = {}
_CACHED_KEY_CHARS = 256
"""Longest key the parsing caches remember: each cache is bounded in entries, and with this in
bytes too (4096 x 256 at most), whatever size of header or path a client sends."""


def _normalise_event_type(raw: str) -> str:
    value = _SPACES.sub("-", raw.strip().lower())
    if len(value) > MAX_EVENT_TYPE or not EVENT_TYPE_PATTERN.match(value):
        raise BadRequest(
            f"event type {clip(raw, 60)!r} is not allowed: use letters, digits, '.', '_', ':' "
            "or '-' (spaces become '-'), in segments joined by '/' that each start with a letter "
            "or digit, at most 128 characters",
            errors=[{"field": "event_type", "value": clip(raw, 60)}],
            reason="bad_event_type",
        )
    return value


def split_content_type(header: str | None) -> tuple[str, str | None]:
    """`Content-Type` as (media type in lower case, charset or None)."""
    if header is not None and len(header) > _CACHED_KEY_CHARS:
        return _split_content_type.__wrapped__(header)
    return _split_content_type(header)


@functools.lru_cache(maxsize=1024)
def _split_content_type(header: str | None) -> tuple[str, str | None]:
    if not header:
        return "", None
    media, _, rest = header.partition(";")
    charset = None
    for param in rest.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return media.strip().lower(), charset


def parse_body(
    body: bytes, content_type: str | None, *, max_depth: int
) -> tuple[dict[str, Any], str]:
    """The event's properties from a body, and what kind of JSON value the body was."""
    media, charset = split_content_type(content_type)
    if not body or body.isspace():  # as `not body.strip()`, without copying the body
        return {}, "empty"
    if media == "application/x-www-form-urlencoded":
        charset = charset or "utf-8"
        return parse_form(_decode(body, charset), encoding=charset, field="body"), "form"
    value = _parse_json_of_media(
        body, media, charset, max_depth=max_depth, supported=SUPPORTED_MEDIA_TYPES
    )
    if isinstance(value, dict):
        return value, "object"
    return {NON_OBJECT_KEY: value}, _json_kind(value)


def parse_json_body(
    body: bytes,
    content_type: str | None,
    *,
    max_depth: int,
    supported: tuple[str, ...] = JSON_MEDIA_TYPES,
) -> Any:
    """A body that must be JSON: its content type one that says so (or `text/plain`, as
    `sendBeacon` sends, or none), else a 415 naming the type."""
    media, charset = split_content_type(content_type)
    return _parse_json_of_media(body, media, charset, max_depth=max_depth, supported=supported)


def _parse_json_of_media(
    body: bytes, media: str, charset: str | None, *, max_depth: int, supported: tuple[str, ...]
) -> Any:
    """`parse_json_body` with the content type already split."""
    if media in ("", "text/plain", "application/json") or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return parse_json(body, charset, max_depth=max_depth)
    raise UnsupportedMediaType(
        f"content type {clip(media, 60)!r} is not supported; send one of: " + ", ".join(supported),
        errors=[{"field": "content-type", "value": clip(media, 60)}],
    )


def parse_json(body: bytes, charset: str | None, *, max_depth: int) -> Any:
    """Decode JSON, saying where it is malformed; refuse nesting deeper than `max_depth`, bytes
    that are not UTF-8 (`bad_encoding`), and numbers that would not be stored as sent."""
    data: bytes | str = body
    if charset not in (None, "utf-8", "utf8"):
        data = _decode(body, charset)
    elif body.startswith(b"\xef\xbb\xbf"):
        data = body[3:]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg.lower() or "recursion" in exc.msg.lower():
            raise _too_deep(max_depth) from None
        # Said as precisely as can be: the encoding, then a number out of range (orjson calls
        # both malformed), and only then malformed JSON.
        if isinstance(data, bytes):
            _decode(data, "utf-8")
        if _may_hold_numbers_out_of_range(data):
            _refuse_numbers_out_of_range(data)
        raise BadRequest(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            errors=[
                {
                    "field": "body",
                    "line": exc.lineno,
                    "column": exc.colno,
                    "position": exc.pos,
                    "message": exc.msg,
                }
            ],
            reason="malformed_json",
        ) from None
    # A body with no more brackets than the limit cannot nest deeper: skip the walk.
    brackets = data.count(b"{") + data.count(b"[") if isinstance(data, bytes) else max_depth + 1
    if brackets > max_depth and nesting_depth(value, stop_after=max_depth) > max_depth:
        raise _too_deep(max_depth)
    if _may_hold_numbers_out_of_range(data):
        _refuse_numbers_out_of_range(data)
    return value


def _may_hold_numbers_out_of_range(data: bytes | str) -> bool:
    """Whether the body has a run of 19 digits or a three-digit exponent (maybe in a string):
    only such a body can hold an integer beyond signed 64 bits or a float out of range."""
    if isinstance(data, bytes):
        shape = data.translate(_NUMBER_SHAPE)
        long_run, exponent, signed_exponent = _LONG_NUMBER_SHAPES
        return long_run in shape or exponent in shape or signed_exponent in shape
    text = data.translate(_NUMBER_SHAPE_TEXT)
    long_run_text, exponent_text, signed_exponent_text = _LONG_NUMBER_SHAPES_TEXT
    return long_run_text in text or exponent_text in text or signed_exponent_text in text


def _refuse_numbers_out_of_range(data: bytes | str) -> None:
    """Read the body again with the exact parser, which hands over every number literal as
    written: an integer outside signed 64 bits (-2^63..2^63-1), which the backends would not
    store and compare alike, is refused (`integer_out_of_range`), and so is a float that
    overflows to infinity or underflows to zero (`number_out_of_range`). A body the exact
    parser cannot read either is left for the caller to call malformed."""
    try:
        json.loads(data, parse_int=_checked_int, parse_float=_checked_float)
    except (ValueError, RecursionError):  # BadRequest is neither: the refusals pass through
        return


def _checked_int(literal: str) -> int:
    # The length first: int() of thousands of digits is slow, and refused past 4300.
    if len(literal.lstrip("-")) > 19 or not INT64_MIN <= (number := int(literal)) <= INT64_MAX:
        raise BadRequest(
            f"integer {clip(literal, 40)} is outside signed 64 bits "
            f"({INT64_MIN} to {INT64_MAX}); send it as a string",
            errors=[
                {"field": "body", "value": clip(literal, 40), "min": INT64_MIN, "max": INT64_MAX}
            ],
            reason="integer_out_of_range",
        )
    return number


def _checked_float(literal: str) -> float:
    number = float(literal)
    mantissa = literal.lower().partition("e")[0]
    if math.isinf(number) or (number == 0.0 and mantissa.strip("-+.0") != ""):
        problem = "overflows" if math.isinf(number) else "underflows"
        raise BadRequest(
            f"number {clip(literal, 40)} {problem} a 64-bit float (about 1e-308 to 1e308 "
            "in magnitude); send it as a string",
            errors=[{"field": "body", "value": clip(literal, 40), "problem": problem}],
            reason="number_out_of_range",
        )
    return number


def nesting_depth(value: Any, *, stop_after: int | None = None) -> int:
    """How deeply objects and arrays nest (a flat object is 1, a scalar 0); stops counting
    once past `stop_after`, so a hostile body costs no more than the limit."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if stop_after is not None and deepest > stop_after:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parse_form(text: str, *, encoding: str = "utf-8", field: str = "query") -> dict[str, Any]:
    """A query string or form body: single keys to strings, repeated keys to lists.
    Percent-escapes are bytes in `encoding` (a form's declared charset); escapes that are not
    valid there are refused (`bad_encoding`), never stored as replacement characters."""
    try:
        pairs = parse_qs(text, keep_blank_values=True, encoding=encoding, errors="strict")
    except UnicodeError as exc:  # 'idna' and the like raise the base class
        position = exc.start if isinstance(exc, UnicodeDecodeError) else None
        raise BadRequest(
            f"{field}'s percent-escapes are not valid {clip(encoding, 40)}",
            errors=[
                {"field": field, "charset": clip(encoding, 40)}
                | ({} if position is None else {"position": position})
            ],
            reason="bad_encoding",
        ) from None
    return {key: values[0] if len(values) == 1 else values for key, values in pairs.items()}


def safe_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers for the stored context, minus credentials and anything secret-looking."""
    return scan_headers(headers)[1]


def scan_headers(headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], dict[str, str]]:
    """One pass over the request headers: the first value of each (by lower-case name, as
    `RawRequest.header` reads it), and the headers to store in the context (repeated ones
    joined with ", ", credentials and anything secret-looking left out)."""
    first: dict[str, str] = {}
    kept: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, keep = (
            _header_name(raw_name)
            if len(raw_name) <= _CACHED_KEY_CHARS
            else _header_name.__wrapped__(raw_name)
        )
        value = raw_value.decode("latin-1")
        if name in first:
            if keep:
                kept[name] = f"{kept[name]}, {value}"
            continue
        first[name] = value
        if keep:
            kept[name] = value
    return first, kept


@functools.lru_cache(maxsize=4096)
def _header_name(raw_name: bytes) -> tuple[str, bool]:
    """The header's name in lower case, and whether it may be stored. Header names repeat
    from request to request, so the answer is remembered (the cache is bounded)."""
    name = raw_name.decode("latin-1").lower()
    return name, not (name in _DROPPED_HEADERS or _SECRET_LOOKING.search(name))


def _decode(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise UnsupportedMediaType(
            f"charset {clip(charset, 40)!r} is not known",
            errors=[{"field": "content-type", "value": clip(charset, 40)}],
            reason="unsupported_charset",
        ) from None
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"body is not valid {charset} at byte {exc.start}",
            errors=[{"field": "body", "position": exc.start}],
            reason="bad_encoding",
        ) from None
    except UnicodeError:  # codecs such as 'undefined', 'idna', 'punycode' raise the base class
        raise BadRequest(
            f"body is not valid {clip(charset, 40)}",
            errors=[{"field": "body", "charset": clip(charset, 40)}],
            reason="bad_encoding",
        ) from None


def _too_deep(limit: int) -> BadRequest:
    return BadRequest(
        f"body nests objects or arrays deeper than the limit of {limit}",
        errors=[{"field": "body", "limit": limit}],
        reason="body_too_deep",
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
