"""Domain exceptions that carry their HTTP status, and the one JSON error shape.

Every refusal, whichever layer raises it, leaves as
`{"ok": false, "error": "...", "errors": [...], "status": N}`; `reason` is a short stable code
used as the metrics label.
"""

from __future__ import annotations

from typing import Any

import orjson


class EventstitchError(Exception):
    """Base of every refusal the API can explain to its caller."""

    status = 400
    reason = "bad_request"
    kept_body: bytes | None = None
    """What the quarantine may keep of the request's body instead of the body itself (a
    source's redactions applied); None: the body as read."""

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        if reason is not None:
            self.reason = reason
        self.headers = headers or {}


class BadRequest(EventstitchError):
    status = 400
    reason = "bad_request"


class Unauthorized(EventstitchError):
    status = 401
    reason = "unauthorized"


class Forbidden(EventstitchError):
    status = 403
    reason = "forbidden"


class NotFound(EventstitchError):
    status = 404
    reason = "not_found"


class MethodNotAllowed(EventstitchError):
    status = 405
    reason = "method_not_allowed"


class Conflict(EventstitchError):
    status = 409
    reason = "conflict"


class PayloadTooLarge(EventstitchError):
    status = 413
    reason = "body_too_large"


class UnsupportedMediaType(EventstitchError):
    status = 415
    reason = "unsupported_media_type"


class Unprocessable(EventstitchError):
    status = 422
    reason = "validation_failed"


class TooManyRequests(EventstitchError):
    """A source is over its rate limit: retry after the seconds in Retry-After, nothing stored."""

    status = 429
    reason = "rate_limited"


class Overloaded(EventstitchError):
    """The write queue is full or storage is briefly unavailable: retry later, nothing stored."""

    status = 503
    reason = "overloaded"


def query_too_slow(limit_ms: int) -> BadRequest:
    """The answer to a read stopped at the query time limit (`query_timeout`)."""
    return BadRequest(
        f"the query ran longer than {limit_ms} ms and was stopped; "
        "narrow it with type, source_id, since or until",
        errors=[{"field": "query", "limit_ms": limit_ms}],
        reason="query_timeout",
    )


def error_body(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> bytes:
    """The one error shape, serialised."""
    return orjson.dumps({"ok": False, "error": message, "errors": errors or [], "status": status})


def clip(value: object, limit: int = 80) -> str:
    """A value shortened for an error message, so a huge input never echoes back whole."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


ECHOED_ID_CHARS = 200


def clip_id(value: str) -> str:
    """An id as a message repeats it back: a 404 for a 10 KB id must not echo 10 KB."""
    return clip(value, ECHOED_ID_CHARS)
