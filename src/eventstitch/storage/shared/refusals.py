"""Why a source refuses an event, the same on every backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventstitch.storage.errors import SourceRefused

TRACKER_KINDS = ("tracker",)


def refusal(source_id: str, source: Sequence[Any] | None, kinds: str) -> SourceRefused | None:
    """The refusal of an event by its source's row (kind, enabled), or None if the source takes
    it; `kinds` lists the accepted kinds as ",webhook,"."""
    if source is None:
        return SourceRefused(source_id, "unknown_source")
    if not source[1]:
        return SourceRefused(source_id, "disabled_source")
    if f",{source[0]}," not in kinds:
        return SourceRefused(source_id, "wrong_source_kind")
    return None


def kinds_text(kinds: Sequence[str]) -> str:
    """Accepted kinds as the checked inserts match them: ",webhook,"."""
    return "," + ",".join(sorted(kinds)) + ","


def check_tracker(source_id: str, source: Sequence[Any] | None) -> None:
    """Raise unless the source's row (kind, enabled) is an enabled tracker."""
    refused = refusal(source_id, source, kinds_text(TRACKER_KINDS))
    if refused is not None:
        raise refused
