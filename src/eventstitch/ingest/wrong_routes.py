"""Requests to a path no ingest route answers, made visible: a sender given a wrong URL (a
`/collect` path of the wrong shape, `/track/...`, or a path an analytics SDK posts to) gets a
404 that is counted by route family in /metrics and kept in the quarantine (`unknown_route`).

No source is known for such a request, so nothing can be scrubbed by what a source holds
secret: the kept record holds only the headers on a short list of harmless ones, and the query
without secret-looking parameters.
"""

from __future__ import annotations

import re

from eventstitch import metrics
from eventstitch.errors import NotFound, clip

FAMILIES = ("collect", "track", "sdk", "other")
SDK_FIRST_SEGMENTS = frozenset({"v1", "batch", "capture", "e", "i"})
"""First path segments analytics SDKs post to (Segment and RudderStack `/v1/...`, `/batch`,
PostHog `/capture`, `/e/`, `/i/`)."""
KEPT_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "accept", "origin"})
"""The only headers kept for a request to an unknown route."""
REASON = "unknown_route"
_SECRET_LOOKING = re.compile(
    r"key|secret|token|passw|auth|sign|credential|session|private|cookie", re.IGNORECASE
)


def route_family(path: str) -> str:
    """The route family a path belongs to: `collect`, `track`, `sdk`, or `other`."""
    first = path.lstrip("/").split("/", 1)[0]
    if first in ("collect", "track"):
        return first
    return "sdk" if first in SDK_FIRST_SEGMENTS else "other"


def refusal(path: str, family: str) -> NotFound:
    """The 404 for a path no ingest route answers, counted by its family."""
    metrics.UNKNOWN_ROUTES.labels(family).inc()
    return NotFound(
        f"no route answers {clip(path, 80)!r}: expected /collect/{{event_type}}/{{source_id}}"
        " for webhooks, /track for tracker calls",
        errors=[{"field": "path", "value": clip(path, 120), "family": family}],
        reason=REASON,
    )


def kept_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers of such a request that may be kept: the harmless ones only."""
    return {name: value for name, value in headers.items() if name in KEPT_HEADERS}


def kept_query(query: str) -> str:
    """The query string without parameters whose names look like credentials."""
    if not query:
        return query
    return "&".join(
        piece for piece in query.split("&") if not _SECRET_LOOKING.search(piece.split("=")[0])
    )
