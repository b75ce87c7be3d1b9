"""OpenAPI description of the webhook bridge, which runs on raw ASGI outside FastAPI."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "Refused; nothing stored. Body: {ok: false, error, errors, status}.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}
_PARAMS = [
    {
        "name": "event_type",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "Everything between /collect/ and the last segment, slashes included "
        "(orders/create). Lower-cased, whitespace to '-'; then segments of [a-z0-9._:-] joined "
        "by '/', each starting with a letter or digit, at most 128 in all. %2F is a slash.",
    },
    {
        "name": "source_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The last path segment.",
    },
]
_ANSWER = {
    "description": "Stored durably (answered only after commit).",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "ok": {"type": "boolean"},
                    "id": {"type": "string", "description": "UUIDv7 event id"},
                    "type": {"type": "string"},
                    "profile_less": {"type": "boolean"},
                    "profile_id": {"type": ["string", "null"]},
                },
            }
        }
    },
}
_REFUSALS = {str(code): _ERROR for code in (400, 403, 404, 405, 413, 415)} | {
    "401": {**_ERROR, "description": "The source requires a signature and this one is not valid."},
    "429": {**_ERROR, "description": "The source is over its rate limit; see Retry-After."},
    "503": {**_ERROR, "description": "Queue full or storage unavailable; see Retry-After."},
}

COLLECT_PATHS: dict[str, Any] = {
    "/collect/{event_type}/{source_id}": {
        "post": {
            "tags": ["ingest"],
            "summary": "Webhook bridge: store the body as a profile-less event",
            "description": "JSON (any charset, also as text/plain or without a content type), "
            "or a form body (repeated keys become lists). A JSON value that is not an object is "
            "kept whole under properties._body.",
            "parameters": _PARAMS,
            "requestBody": {
                "content": {
                    "application/json": {"schema": {}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                }
            },
            "responses": {"200": _ANSWER, **_REFUSALS},
        },
        "get": {
            "tags": ["ingest"],
            "summary": "Webhook bridge: store the query string as a profile-less event",
            "parameters": _PARAMS,
            "responses": {"200": _ANSWER, **_REFUSALS},
        },
    }
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "error", "errors", "status"],
    "properties": {
        "ok": {"type": "boolean", "const": False},
        "error": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "status": {"type": "integer"},
    },
}
