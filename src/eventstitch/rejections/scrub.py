"""What a kept refusal must not hold of its source's secrets."""

from __future__ import annotations

import dataclasses

from eventstitch.sources import signatures
from eventstitch.storage.records import RejectionRecord, SourceRecord

HEADERS_KEPT_WITHOUT_SOURCE = frozenset(
    {
        "accept",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "origin",
        # The delivery-id headers of ingest.service.DELIVERY_ID_HEADERS: a replay to a source
        # created afterwards still deduplicates by them.
        "idempotency-key",
        "x-event-id",
        "x-github-delivery",
        "webhook-id",
        "x-shopify-webhook-id",
    }
)
"""The only headers kept of a refusal no source is known for (a bad path, an unknown source,
a /track body naming none): any other header, User-Agent included, may be where some source
reads its token, and nothing says which."""


def scrubbed(record: RejectionRecord, source: SourceRecord | None) -> RejectionRecord:
    """The record without what may carry a source's secret: every `token` query parameter
    always; with a source, the header it reads its signature from (a custom name need not look
    secret to the header filter) and any header or parameter holding one of its secrets;
    without one, every header but the harmless few. Applied as the record is written, with the
    source as it is then."""
    if source is None:
        headers = {k: v for k, v in record.headers.items() if k in HEADERS_KEPT_WITHOUT_SOURCE}
        query = record.query
    else:
        headers, query = signatures.without_secret(source.signature, record.headers, record.query)
    return dataclasses.replace(record, query=signatures.strip_token(query), headers=headers)
