"""What a kept refusal must not hold of its source's secrets."""

from __future__ import annotations

import dataclasses

from eventstitch.ingest.handshakes import without_verify_token
from eventstitch.sources import signatures
from eventstitch.storage.records import RejectionRecord, SourceRecord


def scrubbed(record: RejectionRecord, source: SourceRecord | None) -> RejectionRecord:
    """The record without what may carry a source's secret: the `token` query parameter and
    Meta's `hub.verify_token` always, and the header the source reads its signature from (a
    custom name need not look secret to the header filter). Applied as the record is written,
    with the source as it is then."""
    headers, query = signatures.without_secret(
        source.signature if source else None, record.headers, record.query
    )
    kept_query = without_verify_token(signatures.strip_token(query))
    return dataclasses.replace(record, query=kept_query, headers=headers)
