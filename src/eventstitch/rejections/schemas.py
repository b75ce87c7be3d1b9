"""What goes in and out of the rejections API: the rendered record and the page."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from eventstitch.ids import ms_to_iso
from eventstitch.storage.records import RejectionRecord


class RejectionOut(BaseModel):
    """One refused ingest request (documentation model; answers use `rejection_json`)."""

    id: str
    received_at: str
    route: str = Field(
        description="`collect` or `track`; `sdk` for a wrong route of an analytics SDK's path."
    )
    reason: str = Field(description="The refusal's reason, as in /metrics.")
    status: int
    error: str = Field(description="The error message the sender was answered with.")
    errors: list[dict[str, Any]]
    source_id: str | None
    method: str
    path: str
    query: str
    headers: dict[str, str] = Field(description="Without credentials or secret-looking names.")
    client: str | None
    body_size: int | None = Field(description="Bytes sent; null when the body was never read.")
    body_truncated: bool = Field(description="Only the first bytes were kept: no replay.")
    body: str | None = Field(None, description="One rejection only: the body kept.")
    body_encoding: str | None = Field(None, description="`utf-8`, or `base64` for other bytes.")
    replayed_at: str | None
    replayed_event_ids: list[str]


class RejectionPageOut(BaseModel):
    rejections: list[RejectionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
    dropped_total: int = Field(description="Rejections not kept (full buffer, bounds, errors).")
    dropped: dict[str, int] = Field(description="The same, by cause.")


@dataclass(frozen=True, slots=True)
class RejectionPage:
    """A page of rejections, newest first, with the drop totals."""

    rejections: list[RejectionRecord]
    next_cursor: str | None
    dropped: dict[str, int]


def rejection_json(record: RejectionRecord) -> dict[str, Any]:
    """A rejection as the API renders it; `body` only when the record carries it."""
    out: dict[str, Any] = {
        "id": record.id,
        "received_at": ms_to_iso(record.received_ms),
        "route": record.route,
        "reason": record.reason,
        "status": record.status,
        "error": record.message,
        "errors": record.errors,
        "source_id": record.source_id,
        "method": record.method,
        "path": record.path,
        "query": record.query,
        "headers": record.headers,
        "client": record.client,
        "body_size": record.body_size,
        "body_truncated": record.body_truncated,
        "replayed_at": ms_to_iso(record.replayed_ms) if record.replayed_ms is not None else None,
        "replayed_event_ids": list(record.replayed_event_ids),
    }
    if record.body is not None:
        try:
            out["body"], out["body_encoding"] = record.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            out["body"] = base64.b64encode(record.body).decode()
            out["body_encoding"] = "base64"
    return out


def page_json(page: RejectionPage) -> dict[str, Any]:
    """A listing as the API renders it."""
    return {
        "rejections": [rejection_json(r) for r in page.rejections],
        "next_cursor": page.next_cursor,
        "dropped_total": sum(page.dropped.values()),
        "dropped": page.dropped,
    }
