"""What the ingest routes hand to the ingest service: the request, already read, nothing parsed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One request to the webhook bridge, as it came off the wire."""

    method: str
    event_type: str
    source_id: str
    body: bytes
    query_string: str
    headers: list[tuple[bytes, bytes]]
    client: str | None

    def header(self, name: bytes) -> str | None:
        """The first value of a header (name in lower case), decoded as Latin-1."""
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None
