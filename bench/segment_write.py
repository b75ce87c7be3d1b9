"""What writing one insight segment costs: time, CPU and peak memory for N events in one span.

    .venv/bin/python bench/segment_write.py [--events 100000]

Fills a SQLite store (in a temporary folder) with `--events` realistic events
(bench/insights_payloads.py, the payloads of bench/insights_query.py) received within one
minute that ended more than a minute ago, then runs one segments rebuild in this process, as a
refresher round does in its child (with the default memory cap, EVENTSTITCH_COLUMNAR_MEMORY_MB),
and prints the wall and CPU time it took and the process's peak RSS, or the error it failed
with.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import insights_query as iq
from eventstitch.columnar import segments
from eventstitch.ids import now_ms


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    if not 1 <= args.events <= 2_000_000:
        parser.error("keep it bounded: 1-2 000 000 events")
    with tempfile.TemporaryDirectory(prefix="eventstitch-segment-") as name:
        folder = Path(name)
        db = folder / "eventstitch.db"
        start = (now_ms() - 180_000) // 60_000 * 60_000  # a minute sealed by now
        await iq.fill_span(db, args.events, start, 59_000)
        ctx = iq.context(f"sqlite:///{db}", folder, 600)
        await ctx.storage.start()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            written = await segments.rebuild(ctx=ctx, from_scratch=True)
            outcome = f"{written} segment(s): {[f.name for f in segments.files(ctx)]}"
        except Exception as exc:  # what a refresher round would log
            outcome = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            await ctx.storage.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"{args.events} events: {outcome}")
        print(f"{wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
