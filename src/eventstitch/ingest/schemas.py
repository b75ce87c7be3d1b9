"""What the ingest routes hand to the ingest service: the request, already read, nothing parsed."""

from __future__ import annotations

from dataclasses import dataclass

from eventstitch.frozen import frozen_record


@frozen_record
class RawRequest:
    """A request to an ingest route as it came off the wire (the body already read)."""

    method: str
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


@frozen_record
class WebhookRequest(RawRequest):
    """A request to the webhook bridge, with the two parts of its path."""

    event_type: str
    source_id: str


@dataclass(frozen=True, slots=True)
class RepeatedDelivery:
    """A delivery whose id the source sent before: nothing new was stored."""

    body_differs: bool | None
    """Whether its properties differ from those stored the first time, so that a sender who
    reused an id for another body can tell; None when the first event is no longer stored."""
