"""What keeping segments fresh costs at a steady rate: refresher rounds over one hour of events.

    .venv/bin/python bench/refresher_rounds.py [--events 100000] [--round-minutes 5]

Fills a SQLite store (in a temporary folder) with `--events` realistic events spread evenly
over one past hour (bench/insights_payloads.py, the payloads of bench/insights_query.py), then
runs the refresher's rounds (`segments.rebuild`, in this process, with the default memory cap)
as the clock would have moved through that hour: one round every `--round-minutes`, each
writing the sealed minutes as a part, then the round after the hour that writes the hour
segment. The clock is the module's, moved by the script; nothing waits. Prints each stage's
wall and CPU time, how many events the rounds read from the store (every event once is the
least possible), and the peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import insights_query as iq
from eventstitch.columnar import segments
from eventstitch.ids import now_ms

HOUR_MS = 3_600_000
MINUTE_MS = 60_000


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--round-minutes", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.events <= 2_000_000:
        parser.error("keep it bounded: 1-2 000 000 events")
    if not 1 <= args.round_minutes <= 60:
        parser.error("a round every 1-60 minutes")
    with tempfile.TemporaryDirectory(prefix="eventstitch-rounds-") as name:
        folder = Path(name)
        db = folder / "eventstitch.db"
        hour = now_ms() // HOUR_MS * HOUR_MS - 3 * HOUR_MS
        await iq.fill_span(db, args.events, hour, HOUR_MS - 1)
        ctx = iq.context(f"sqlite:///{db}", folder, 600)
        await ctx.storage.start()
        read = [0]
        reading = segments.iter_events

        async def counted(**kwargs: Any) -> Any:
            async for event in reading(**kwargs):
                read[0] += 1
                yield event

        segments.iter_events = counted  # type: ignore[assignment]
        clocks = [
            hour + minute * MINUTE_MS + segments.SEAL_MS
            for minute in range(args.round_minutes, 60, args.round_minutes)
        ]
        try:
            parts = await _rounds(ctx, clocks)
            sealing = await _rounds(ctx, [hour + HOUR_MS + segments.SEAL_MS])
        finally:
            segments.now_ms = now_ms  # type: ignore[assignment]
            await ctx.storage.close()
        listed = [f.name.split("-")[0] for f in segments.files(ctx)]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"{args.events} events in one hour, a round every {args.round_minutes} minutes")
        print(f"{len(clocks)} rounds writing parts: {parts[0]:.1f} s wall, {parts[1]:.1f} s CPU")
        print(f"the round sealing the hour: {sealing[0]:.1f} s wall, {sealing[1]:.1f} s CPU")
        print(f"events read from the store: {read[0]} ({read[0] / args.events:.2f} an event)")
        print(f"segments at the end: {listed}; peak RSS {peak} MB")
    return 0


async def _rounds(ctx: Any, clocks: list[int]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for clock in clocks:
        segments.now_ms = lambda at=clock: at  # type: ignore[assignment,misc]
        await segments.rebuild(ctx=ctx)
    return time.perf_counter() - wall, time.process_time() - cpu


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
