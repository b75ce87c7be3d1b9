"""What a kept refusal must not hold of its source's secrets."""

from __future__ import annotations

import dataclasses

from eventstitch.ingest.handshakes import without_verify_token
from eventstitch.sources import signatures
from eventstitch.storage.records import RejectionRecord, SourceRecord

HEADERS_KEPT_WITHOUT_SOURCE = signatures.HEADERS_EVENTSTITCH_READS - {
    "connection",
    "transfer-encoding",
}
"""The only headers kept of a refusal no source is known for (a bad path, an unknown source,
a /track body naming none): no source may read its secret from these, while any other
header, User-Agent included, may be where some source reads its token."""


def scrubbed(record: RejectionRecord, source: SourceRecord | None) -> RejectionRecord:
    """The record without what may carry a source's secret: every `token` query parameter and
    Meta's `hub.verify_token` always; with a source, the header it reads its signature from (a
    custom name need not look secret to the header filter) and any header or parameter holding
    one of its secrets; without one, every header but the harmless few. Applied as the record
    is written, with the source as it is then."""
    if source is None:
        headers = {k: v for k, v in record.headers.items() if k in HEADERS_KEPT_WITHOUT_SOURCE}
        query = record.query
    else:
        headers, query = signatures.without_secret(source.signature, record.headers, record.query)
    kept_query = without_verify_token(signatures.strip_token(query))
    return dataclasses.replace(record, query=kept_query, headers=headers)
