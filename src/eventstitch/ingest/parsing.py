"""Turning a raw webhook request into event properties and a request context.

Pure functions, no I/O: each refusal is a domain error that names the problem, so the route can
answer it in the one error shape and nothing is stored.
"""

from __future__ import annotations

import functools
import json
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

SUPPORTED_MEDIA_TYPES = (
    "application/json",
    "application/*+json",
    "application/x-www-form-urlencoded",
    "text/plain (JSON)",
)

_SPACES = re.compile(r"\s+")
# A run of 20 digits is found by mapping every digit to "0" and everything else to "." and then
# searching for twenty "0": two C loops, several times faster than a regular expression.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_DIGITS_AS_ZERO_TEXT = str.maketrans({str(d): "0" for d in range(1, 10)} | {"0": "0"})
_TWENTY_DIGITS = b"0" * 20
_TWENTY_DIGITS_TEXT = "0" * 20
_DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_LOOKING = re.compile(
    r"signature|secret|token|passw|api[-_]?key|auth|hmac|credential|session|csrf|private|cookie",
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
            reason="bad_path",
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
        if len(_EVENT_TYPES) >= 4096:
            _EVENT_TYPES.clear()
        _EVENT_TYPES[raw] = value
    return value


_EVENT_TYPES: dict[str, str] = {}


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


@functools.lru_cache(maxsize=1024)
def split_content_type(header: str | None) -> tuple[str, str | None]:
    """`Content-Type` as (media type in lower case, charset or None)."""
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
    if not body.strip():
        return {}, "empty"
    if media == "application/x-www-form-urlencoded":
        charset = charset or "utf-8"
        text = _decode(body, charset)
        try:
            return parse_form(text, encoding=charset), "form"
        except UnicodeError:  # e.g. 'idna' decodes the text but not percent-escapes
            raise BadRequest(
                f"form body's percent-escapes are not valid {clip(charset, 40)}",
                errors=[{"field": "body", "charset": clip(charset, 40)}],
                reason="bad_encoding",
            ) from None
    if media in ("", "text/plain", "application/json") or (
        media.startswith("application/") and media.endswith("+json")
    ):
        value = parse_json(body, charset, max_depth=max_depth)
        if isinstance(value, dict):
            return value, "object"
        return {NON_OBJECT_KEY: value}, _json_kind(value)
    raise UnsupportedMediaType(
        f"content type {clip(media, 60)!r} is not supported; send one of: "
        + ", ".join(SUPPORTED_MEDIA_TYPES),
        errors=[{"field": "content-type", "value": clip(media, 60)}],
    )


def parse_json(body: bytes, charset: str | None, *, max_depth: int) -> Any:
    """Decode JSON, saying where it is malformed; refuse nesting deeper than `max_depth`."""
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
    if isinstance(data, bytes):
        long_digits = data.translate(_DIGITS_AS_ZERO).find(_TWENTY_DIGITS) >= 0
    else:
        long_digits = data.translate(_DIGITS_AS_ZERO_TEXT).find(_TWENTY_DIGITS_TEXT) >= 0
    if long_digits:
        _refuse_integers_beyond_64_bits(data)
    return value


def _refuse_integers_beyond_64_bits(data: bytes | str) -> None:
    """orjson reads an integer beyond 64 bits as a float, which would lose digits silently; a
    run of 20 or more digits (possibly inside a string) sends the body through the exact parser
    to find out, and an integer literal out of range is refused."""

    def checked(literal: str) -> int:
        number = int(literal)
        if not -(2**63) <= number < 2**64:
            raise BadRequest(
                f"integer {clip(literal, 40)} is beyond 64 bits; send it as a string",
                errors=[{"field": "body", "value": clip(literal, 40)}],
                reason="integer_out_of_range",
            )
        return number

    json.loads(data, parse_int=checked)


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


def parse_form(text: str, *, encoding: str = "utf-8") -> dict[str, Any]:
    """A query string or form body: single keys to strings, repeated keys to lists.
    Percent-escapes are bytes in `encoding` (a form's declared charset)."""
    pairs = parse_qs(text, keep_blank_values=True, encoding=encoding)
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
        name, keep = _header_name(raw_name)
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
