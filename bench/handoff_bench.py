"""CPU per blocking call handed from the event loop to a thread: `asyncio.to_thread` against
`mailbastion.core.threads` (what the spool's write, the anti-virus walk and the MDA use), under uvloop
as `serve` runs. Prints µs of process CPU per round trip, alternating the two, a few rounds.

    .venv/bin/python bench/handoff_bench.py [--calls 20000] [--in-flight 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mailbastion.core.threads import Workers  # noqa: E402


def _call(x: int) -> int:
    return x


async def _measure(args: argparse.Namespace) -> None:
    workers = Workers(8, name="bench")
    ways = {"asyncio.to_thread": lambda: asyncio.to_thread(_call, 1), "core.threads.Workers": lambda: workers.run(_call, 1)}
    try:
        for name, call in ways.items():  # warm-up: threads started
            await asyncio.gather(*(call() for _ in range(args.in_flight)))
        for r in range(args.rounds):
            for name, call in ways.items():
                t0 = time.process_time()
                for _ in range(args.calls // args.in_flight):
                    await asyncio.gather(*(call() for _ in range(args.in_flight)))
                used = time.process_time() - t0
                print(f"round {r + 1}  {name:22s} {used / args.calls * 1e6:6.1f} µs CPU per call")
    finally:
        workers.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        print("uvloop not installed: asyncio's own loop", file=sys.stderr)
    asyncio.run(_measure(args))


if __name__ == "__main__":
    main()
