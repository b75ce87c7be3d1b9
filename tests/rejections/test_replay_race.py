"""Concurrent replays of one rejection, through the service on a real store (both backends):
one stores the event, every other answers 409, and one event is stored."""

from __future__ import annotations

import asyncio

from eventstitch.config import Config
from eventstitch.context import AppContext
from eventstitch.errors import Conflict
from eventstitch.rejections import service
from eventstitch.sources import service as sources_service
from eventstitch.sources.schemas import SourceCreate
from eventstitch.storage import open_storage
from eventstitch.storage.records import EventFilter, RejectionBounds
from tests.storage.test_contract import T0
from tests.storage.test_rejections_contract import rejection


def test_concurrent_replays_store_one_event(config: Config) -> None:
    async def main() -> tuple[list[object], int]:
        ctx = AppContext.build(config, open_storage(config))
        await ctx.storage.start()
        try:
            await sources_service.create(ctx=ctx, source_in=SourceCreate(id="hooks", name="Hooks"))
            kept = rejection(T0, reason="unknown_source", status=404, body=b'{"n": 1}', body_size=8)
            bounds = RejectionBounds(max_rows=10, min_received_ms=0)
            await ctx.storage.rejections.add([kept], bounds=bounds, lost={})
            answers = await asyncio.gather(
                *[service.replay(ctx=ctx, rejection_id=kept.id) for _ in range(6)],
                return_exceptions=True,
            )
            stored = await ctx.storage.events.list_page(
                EventFilter(source_ids=("hooks",)), limit=10, before_id=None
            )
            return answers, len(stored)
        finally:
            await ctx.storage.close()

    answers, stored = asyncio.run(main())
    succeeded = [a for a in answers if isinstance(a, dict)]
    refused = [a for a in answers if isinstance(a, Conflict)]
    assert len(succeeded) == 1
    assert len(refused) == 5
    assert all(a.reason == "already_replayed" for a in refused)
    assert stored == 1
