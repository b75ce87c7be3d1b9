"""OpenAPI description of the webhook bridge and the tracking API, which run on raw ASGI outside
FastAPI, and the links between operations (a created source leads to collecting for it, a
stored event to reading it), which stateful clients and fuzzers follow."""

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

_READ_EVENT = {
    "operationId": "get_event_api_events__event_id__get",
    "description": "Read the event stored.",
}
_COLLECT_LINKS = {
    "GetEvent": {**_READ_EVENT, "parameters": {"event_id": "$response.body#/id"}},
}
_TRACK_PAYLOAD = {
    "type": "object",
    "required": ["source"],
    "properties": {
        "source": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}},
        },
        "session": {"type": "object", "properties": {"id": {"type": "string"}}},
        "profile": {"type": "object", "properties": {"id": {"type": "string"}}},
        "context": {"type": "object"},
        "properties": {"type": "object"},
        "profile_less": {"type": "boolean"},
        "events": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string"},
                    "id": {"type": "string"},
                    "properties": {"type": "object"},
                    "context": {"type": "object"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

COLLECT_PATHS: dict[str, Any] = {
    "/track": {
        "post": {
            "operationId": "track",
            "tags": ["ingest"],
            "summary": "Tracking API: store a tracker's events with their profile and session",
            "description": "Tracardi's tracker payload; fields not listed are ignored. The "
            "source must be a tracker source. At most 500 events.",
            "parameters": [
                {"name": "profile_less", "in": "query", "schema": {"type": "boolean"}},
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _TRACK_PAYLOAD}},
            },
            "responses": {
                "200": {
                    "description": "Stored durably (answered only after commit).",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                    "links": {
                        "GetFirstEvent": {
                            **_READ_EVENT,
                            "parameters": {"event_id": "$response.body#/events/0/id"},
                        },
                        "GetProfile": {
                            "operationId": "get_profile_api_profiles__profile_id__get",
                            "parameters": {"profile_id": "$response.body#/profile/id"},
                        },
                    },
                },
                **_REFUSALS,
                "422": {**_ERROR, "description": "The payload's shape; the field is named."},
            },
        }
    },
    "/collect/{event_type}/{source_id}": {
        "post": {
            "operationId": "collect_post",
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
            "responses": {"200": {**_ANSWER, "links": _COLLECT_LINKS}, **_REFUSALS},
        },
        "get": {
            "operationId": "collect_get",
            "tags": ["ingest"],
            "summary": "Webhook bridge: store the query string as a profile-less event",
            "parameters": _PARAMS,
            "responses": {"200": {**_ANSWER, "links": _COLLECT_LINKS}, **_REFUSALS},
        },
    },
}

_SOURCE_ID = {"source_id": "$response.body#/id"}
SOURCE_LINKS: dict[str, Any] = {
    "GetSource": {
        "operationId": "get_source_api_sources__source_id__get",
        "parameters": _SOURCE_ID,
    },
    "UpdateSource": {
        "operationId": "update_source_api_sources__source_id__patch",
        "parameters": _SOURCE_ID,
    },
    "CollectForSource": {"operationId": "collect_post", "parameters": _SOURCE_ID},
    "CollectByQuery": {"operationId": "collect_get", "parameters": _SOURCE_ID},
    "TrackForSource": {
        "operationId": "track",
        "requestBody": {"source": {"id": "$response.body#/id"}},
    },
    "DeleteSource": {
        "operationId": "delete_source_api_sources__source_id__delete",
        "parameters": _SOURCE_ID,
    },
}
"""Links from `201` of `POST /api/sources`: what a client does next with the source."""


def with_links(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated document with the bridge's paths and the links from a created source."""
    schema["paths"].update(COLLECT_PATHS)
    created = schema["paths"]["/api/sources"]["post"]["responses"]["201"]
    created["links"] = SOURCE_LINKS
    return schema


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
