"""Eventstitch's own happenings, recorded as profile-less events of the `system` source.

So the same events API and insights that show webhook traffic also show when a source was
disabled or a backfill finished. Profile creations and merges are recorded by storage inside
the transaction that made them; this module records what services do.
"""

from __future__ import annotations

import logging
from typing import Any

from eventstitch.context import AppContext
from eventstitch.identity.resolution import SYSTEM_SOURCE_ID, system_event
from eventstitch.storage.errors import StorageError

log = logging.getLogger(__name__)

SYSTEM_KINDS = frozenset({"system"})


async def record(*, ctx: AppContext, event_type: str, properties: dict[str, Any]) -> None:
    """Store one system event, unless EVENTSTITCH_SYSTEM_EVENTS is off. A failure to record is
    logged, never raised: the action it describes has already happened."""
    if not ctx.config.system_events:
        return
    try:
        await ctx.storage.events.append(
            system_event(event_type, properties), accepted_kinds=SYSTEM_KINDS
        )
    except StorageError as exc:
        log.warning("could not record system event %s: %s", event_type, exc)


__all__ = ["SYSTEM_SOURCE_ID", "record"]
