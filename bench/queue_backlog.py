#!/usr/bin/env python3
"""The queue manager's own CPU per message when it is behind: a backlog in incoming/, and entries deferred
for a host that is down.

    PYTHONPATH=src .venv/bin/python bench/queue_backlog.py                    # backlogs 100, 1000, 5000
    PYTHONPATH=src .venv/bin/python bench/queue_backlog.py --backlog 20000 --deferred 20000

Each cell: a fresh spool in a temporary directory; `--deferred` messages to a host that answers 451 are
delivered once (the manager then knows them as deferred, due in an hour, as after a remote outage), then
`backlog` messages are committed while the manager is stopped, and the clock starts when it starts. The
agent answers 250 at once: what is measured is the manager (scans, claims, record reads and writes,
removals), not a delivery. It prints the process's CPU (user + system) per message drained and the
messages per second. The spool's fsyncs are the same in every cell; the disk's speed moves the absolute
figures, so compare cells of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.outcome import Deferred, Delivered
from mailbastion.core.ports import DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.delivery.dsn import build_dsn
from mailbastion.spool.layout import QueueState
from mailbastion.spool.manager import QueueManager
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.writer import Spool

MESSAGE = (b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: backlog\r\n"
           b"Message-ID: <b@example.org>\r\n\r\n" + b"body line\r\n" * 300)
OK = Delivered(Reply(250, "2.0.0", "ok"), "bench")
DOWN = Deferred(Reply(451, "4.4.1", "host down"), "down.example.net")


class Agent:
    async def deliver(self, request: DeliveryRequest) -> dict[str, object]:
        return {a: (DOWN if a.endswith("@down.example.net") else OK) for a in request.addresses}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _commit_many(spool: Spool, n: int, domain: str) -> None:
    for start in range(0, n, 256):  # concurrent commits share their directory fsyncs, as under load
        await asyncio.gather(*(spool.commit(Envelope(sender=parse_address("alice@example.org"),
                                                     recipients=(parse_address(f"u{k}@{domain}"),)),
                                            MESSAGE, client="bench") for k in range(start, min(n, start + 256))))


async def _drained(spool: Spool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while spool.layout.ids(QueueState.INCOMING) or spool.layout.ids(QueueState.ACTIVE):
        if time.monotonic() > deadline:
            raise TimeoutError("the queue did not drain")
        await asyncio.sleep(0.05)


async def cell(backlog: int, deferred: int, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mb-qbench-") as tmp:
        spool = Spool(Path(tmp) / "spool", min_free_bytes=0)
        bounce = functools.partial(build_dsn, reporting_mta="mx.example.org")
        schedule = RetrySchedule(min_backoff=3600, max_backoff=3600)
        if deferred:
            qm = QueueManager(spool, Agent(), bounce=bounce, schedule=schedule, concurrency=concurrency)
            await qm.start()
            await _commit_many(spool, deferred, "down.example.net")
            await _drained(spool, 600)
            await qm.stop()
        await _commit_many(spool, backlog, "example.net")
        qm = QueueManager(spool, Agent(), bounce=bounce, schedule=schedule, concurrency=concurrency)
        if deferred:
            await qm.start()  # its first full scan learns the deferred entries' due times: not measured
            while len(qm._deferred) < deferred:
                await asyncio.sleep(0.01)
        cpu0, t0 = _cpu(), time.monotonic()
        if not deferred:
            await qm.start()
        await _drained(spool, 3600)
        cpu, wall = _cpu() - cpu0, time.monotonic() - t0
        await qm.stop()
        assert len(spool.layout.ids(QueueState.DEFERRED)) == deferred
        return {"backlog": backlog, "deferred": deferred, "cpu_us_msg": round(1e6 * cpu / backlog, 1),
                "msg_s": round(backlog / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", default="100,1000,5000", help="comma-separated sizes of the incoming backlog")
    ap.add_argument("--deferred", default="0,5000", help="comma-separated counts of deferred entries")
    ap.add_argument("--concurrency", type=int, default=20, help="the manager's delivery slots (the default)")
    args = ap.parse_args()
    print("backlog | deferred | CPU µs/msg | msg/s")
    for d in [int(x) for x in args.deferred.split(",")]:
        for b in [int(x) for x in args.backlog.split(",")]:
            r = asyncio.run(cell(b, d, args.concurrency))
            print(f"{r['backlog']} | {r['deferred']} | {r['cpu_us_msg']} | {r['msg_s']}", flush=True)


if __name__ == "__main__":
    main()
