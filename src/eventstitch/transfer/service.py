"""Moving a whole store to another backend and back: JSON Lines export and import.

The file is one JSON object a line: a header, the sources, the profiles (with their
identifiers), the events (newest first), and a
summary with the counts and a checksum. The checksum is a sum of per-event SHA-256 digests
modulo 2**256, so it does not depend on order and both sides can compute it while streaming.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from eventstitch.columnar import parquet
from eventstitch.context import AppContext
from eventstitch.errors import BadRequest, clip
from eventstitch.ids import iso_to_ms, ms_of_event_id
from eventstitch.query.schemas import event_json
from eventstitch.sources.schemas import SourceOut, checked_rate_limit, checked_signature
from eventstitch.sources.shaping_schemas import checked_shaping
from eventstitch.storage.errors import DuplicateSource
from eventstitch.storage.records import (
    CountQuery,
    EventFilter,
    EventRecord,
    ProfileRecord,
    Shaping,
    SourceRecord,
)
from eventstitch.storage.shared.codec import (
    rate_limit_from_json,
    rate_limit_to_json,
    rules_from_json,
    shaping_from_json,
    signature_from_json,
    signature_to_json,
    traits_from_json,
)

FORMAT = "eventstitch-export"
VERSION = 1
PAGE = 1000

Progress = Callable[[int], None]


class EventDigest:
    """Count and order-independent checksum of a set of events."""

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0

    def add(self, rendered: dict[str, Any]) -> None:
        digest = hashlib.sha256(orjson.dumps(rendered, option=orjson.OPT_SORT_KEYS)).digest()
        self._sum = (self._sum + int.from_bytes(digest, "big")) % (1 << 256)
        self.count += 1

    @property
    def hexdigest(self) -> str:
        return f"{self._sum:064x}"


@dataclass
class ImportReport:
    """What an import did, and whether the store now holds what the file holds."""

    sources_new: int = 0
    sources_existing: int = 0
    profiles_new: int = 0
    profiles_existing: int = 0
    expected_profiles: int | None = None
    events_new: int = 0
    events_existing: int = 0
    expected_events: int | None = None
    expected_checksum: str | None = None
    target_events: int = 0
    target_checksum: str = ""
    target_was_empty: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.problems


async def total_events(*, ctx: AppContext) -> int:
    """How many events the store holds."""
    result = await ctx.storage.events.count(EventFilter(), CountQuery(group_by=()))
    return result.total


async def iter_events(
    *, ctx: AppContext, event_filter: EventFilter | None = None, page: int = PAGE
) -> AsyncIterator[EventRecord]:
    """Every stored event (or those matching the filter), newest first, a page at a time."""
    before: str | None = None
    while True:
        events = await ctx.storage.events.list_page(
            event_filter or EventFilter(), limit=page, before_id=before
        )
        for event in events:
            yield event
        if len(events) < page:
            return
        before = events[-1].id


async def export_parquet(
    *, ctx: AppContext, event_filter: EventFilter, target: Path, progress: Progress | None = None
) -> int:
    """The matching events as one Parquet file (owner-only); how many were written."""
    return await parquet.write(
        events=iter_events(ctx=ctx, event_filter=event_filter),
        target=target,
        limits=parquet.Limits.of(ctx.config),
        progress=progress,
    )


async def iter_profiles(*, ctx: AppContext, page: int = PAGE) -> AsyncIterator[ProfileRecord]:
    """Every profile, merged ones too, in id order, a page at a time."""
    after: str | None = None
    while True:
        profiles = await ctx.storage.profiles.list_page(limit=page, after_id=after)
        for profile in profiles:
            yield profile
        if len(profiles) < page:
            return
        after = profiles[-1].id


def _profile_json(profile: ProfileRecord) -> dict[str, Any]:
    return {
        "id": profile.id,
        "created_ms": profile.created_ms,
        "updated_ms": profile.updated_ms,
        "traits": profile.traits,
        "merged_into": profile.merged_into,
        "identifiers": [list(pair) for pair in profile.identifiers],
    }


def _profile_record(data: dict[str, Any], number: int) -> ProfileRecord:
    try:
        return ProfileRecord(
            id=data["id"],
            created_ms=int(data["created_ms"]),
            updated_ms=int(data["updated_ms"]),
            traits=dict(data["traits"]),
            merged_into=data.get("merged_into"),
            identifiers=tuple((str(k), str(v)) for k, v in data["identifiers"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"line {number}: bad profile ({exc})") from None


async def export_lines(
    *, ctx: AppContext, progress: Progress | None = None
) -> AsyncIterator[bytes]:
    """The whole store as JSON Lines, streamed."""
    yield _line({"kind": "header", "format": FORMAT, "version": VERSION})
    sources = await ctx.storage.sources.list_all()
    for source in sources:
        yield _line({"kind": "source", "source": _source_json(source)})
    profiles = 0
    async for profile in iter_profiles(ctx=ctx):
        profiles += 1
        yield _line({"kind": "profile", "profile": _profile_json(profile)})
    digest = EventDigest()
    async for event in iter_events(ctx=ctx):
        rendered = event_json(event)
        digest.add(rendered)
        yield _line({"kind": "event", "event": rendered})
        if progress is not None:
            progress(1)
    yield _line(
        {
            "kind": "summary",
            "sources": len(sources),
            "profiles": profiles,
            "events": digest.count,
            "checksum": digest.hexdigest,
        }
    )


async def import_lines(
    *, ctx: AppContext, lines: Iterable[bytes], progress: Progress | None = None
) -> ImportReport:
    """Load an export into this store (ids kept; what exists is skipped), then verify it."""
    report = ImportReport()
    report.target_was_empty = await total_events(ctx=ctx) == 0
    pending: list[EventRecord] = []
    seen_header = False
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        item = _parse_line(raw, number)
        kind = item.get("kind")
        if not seen_header:
            if kind != "header" or item.get("format") != FORMAT or item.get("version") != VERSION:
                raise BadRequest(f"line {number}: not an {FORMAT} version {VERSION} file")
            seen_header = True
        elif kind == "source":
            if await _import_source(ctx, _source_record(item["source"], number)):
                report.sources_new += 1
            else:
                report.sources_existing += 1
        elif kind == "profile":
            new = await ctx.storage.profiles.import_batch(
                [_profile_record(item["profile"], number)]
            )
            report.profiles_new += new
            report.profiles_existing += 1 - new
        elif kind == "event":
            pending.append(_event_record(item["event"], number))
            if len(pending) >= PAGE:
                await _flush(ctx, pending, report, progress)
        elif kind == "summary":
            report.expected_events = int(item["events"])
            report.expected_profiles = int(item.get("profiles", 0))
            report.expected_checksum = str(item["checksum"])
        else:
            raise BadRequest(f"line {number}: unknown kind {kind!r}")
    await _flush(ctx, pending, report, progress)
    await _verify(ctx, report)
    return report


async def _verify(ctx: AppContext, report: ImportReport) -> None:
    digest = EventDigest()
    async for event in iter_events(ctx=ctx):
        digest.add(event_json(event))
    report.target_events, report.target_checksum = digest.count, digest.hexdigest
    if report.expected_events is None:
        report.problems.append("the file has no summary line: it was cut short")
        return
    read = report.events_new + report.events_existing
    if read != report.expected_events:
        report.problems.append(f"the file lists {report.expected_events} events but holds {read}")
    profiles = report.profiles_new + report.profiles_existing
    if report.expected_profiles is not None and profiles != report.expected_profiles:
        report.problems.append(
            f"the file lists {report.expected_profiles} profiles but holds {profiles}"
        )
    if report.target_was_empty:
        if digest.count != report.expected_events:
            report.problems.append(
                f"the store holds {digest.count} events, the file {report.expected_events}"
            )
        if digest.hexdigest != report.expected_checksum:
            report.problems.append("checksum of the stored events differs from the file's")


async def _flush(
    ctx: AppContext, pending: list[EventRecord], report: ImportReport, progress: Progress | None
) -> None:
    if not pending:
        return
    new = await ctx.storage.events.import_batch(pending)
    report.events_new += new
    report.events_existing += len(pending) - new
    if progress is not None:
        progress(len(pending))
    pending.clear()


async def _import_source(ctx: AppContext, source: SourceRecord) -> bool:
    try:
        await ctx.storage.sources.create(source)
    except DuplicateSource:
        return False
    return True


def _parse_line(raw: bytes, number: int) -> dict[str, Any]:
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"line {number}: not JSON ({exc.msg})") from None
    if not isinstance(item, dict):
        raise BadRequest(f"line {number}: not a JSON object")
    return item


def _source_json(source: SourceRecord) -> dict[str, Any]:
    """A source as exported: as the API shows it, but with its signing secrets, since an
    export is a backup that must restore a working source (docs/reliability.md)."""
    return {
        **SourceOut.of(source).model_dump(),
        "signature": signature_to_json(source.signature),
        "rate_limit": rate_limit_to_json(source.rate_limit),
    }


def _source_record(data: dict[str, Any], number: int) -> SourceRecord:
    try:
        delivery_id_path = data.get("delivery_id_path")
        source = SourceRecord(
            id=data["id"],
            name=data["name"],
            kind=data["kind"],
            enabled=bool(data["enabled"]),
            description=data.get("description", ""),
            tags=tuple(data.get("tags", ())),
            created_ms=iso_to_ms(data["created_at"]),
            updated_ms=iso_to_ms(data["updated_at"]),
            identification=rules_from_json(data.get("identification") or []),
            traits=traits_from_json(data.get("traits") or {}),
            delivery_id_path=tuple(delivery_id_path.split(".")) if delivery_id_path else (),
            signature=signature_from_json(data.get("signature")),
            rate_limit=rate_limit_from_json(data.get("rate_limit")),
            shaping=_shaping_record(data),
        )
        # Held to what the API accepts: a hand-edited file must not bring a rule the API
        # would refuse (one-character tokens, an unknown digest, a signed tracker).
        if source.signature is not None:
            if source.kind != "webhook":
                raise ValueError("a signature applies to webhook sources only")
            source = dataclasses.replace(source, signature=checked_signature(source.signature))
        if source.rate_limit is not None:
            source = dataclasses.replace(source, rate_limit=checked_rate_limit(source.rate_limit))
        if source.shaping is not None:
            if source.kind != "webhook":
                raise ValueError("shaping applies to webhook sources only")
            source = dataclasses.replace(source, shaping=checked_shaping(source.shaping))
        return source
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRequest(f"line {number}: bad source ({clip(str(exc), 300)})") from None


def _shaping_record(data: dict[str, Any]) -> Shaping | None:
    """An exported source's shaping, with the preset it came from (shown beside it)."""
    shaping = shaping_from_json(data.get("shaping"))
    preset = data.get("preset")
    if preset is None:
        return shaping
    if not isinstance(preset, str):
        raise ValueError("preset must be a string")
    return dataclasses.replace(shaping or Shaping(), preset=preset)


def _event_record(data: dict[str, Any], number: int) -> EventRecord:
    try:
        received_ms = iso_to_ms(data["received_at"])
        if not isinstance(data["id"], str) or ms_of_event_id(data["id"]) != received_ms:
            # The store reads an event's time back from its id (time ranges are id ranges):
            # an id minted at another moment than `received_at` is left out of them.
            raise ValueError("id must be a UUIDv7 minted at received_at")
        return EventRecord(
            id=data["id"],
            type=data["type"],
            source_id=data["source_id"],
            received_ms=received_ms,
            profile_less=bool(data["profile_less"]),
            profile_id=data.get("profile_id"),
            session_id=data.get("session_id"),
            properties=data["properties"],
            context=data["context"],
            converted_ms=iso_to_ms(data["converted_at"]) if data.get("converted_at") else None,
            converted_by=data.get("converted_by"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"line {number}: bad event ({exc})") from None


def _line(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item) + b"\n"
