#!/usr/bin/env python3
"""The spool alone: commits (the 250 promise) and the queue manager's claim/settle, without SMTP or LMTP.

    PYTHONPATH=src .venv/bin/python bench/spool_bench.py [-n 2000] [-c 8] [--dir PATH]

Runs the spool of whatever `mailbastion` is on the path (this checkout's, or another checkout's src/ to get
the figure before a change: the script adapts to the older queue manager and agent signatures):

  commit   n messages committed by c concurrent writers in one process (one acceptor): messages/s,
           process CPU per message, fsync calls per message (file and directory fsyncs together)
  deliver  the queue manager drains incoming/ to an agent that accepts at once: messages/s, CPU and fsyncs
           per message (claim, settle, removal: what the profile's fsync_dir, rmtree and renames cost)

Messages are ~4.8 KB, one in ten with a 100 KiB attachment (the shared bench corpus's shape). The spool
lives on the worktree's file system (ext4 here), never on a tmpfs, which would make fsyncs free. Speed is
measured here, never asserted in tests. One JSON line per phase goes to stdout after the table.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_fsyncs = 0
_real_fsync = os.fsync


def _counting_fsync(fd: int) -> None:
    global _fsyncs
    _fsyncs += 1
    _real_fsync(fd)


def _message(n: int) -> bytes:
    body = (b"Hello,\r\nplease find the minutes of Tuesday's meeting below.\r\n" * 70)[:4600]
    if n % 10 == 0:
        body += b"\r\n--attachment--\r\n" + (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n" * 2800)
    return (f"From: carol@partner.example\r\nTo: alice@example.test\r\nSubject: bench {n}\r\n"
            f"Message-ID: <{n}@partner.example>\r\n\r\n").encode() + body


async def _commit_phase(spool, env, n: int, conc: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    global _fsyncs
    todo = list(range(n))

    async def writer() -> None:
        while todo:
            i = todo.pop()
            await spool.commit(env, _message(i), client="198.51.100.7")

    _fsyncs, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(conc)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"msg_s": round(n / wall, 1), "cpu_ms_msg": round(cpu / n * 1000, 3), "fsyncs_msg": round(_fsyncs / n, 2),
            "wall_s": round(wall, 2)}


def _agent():  # type: ignore[no-untyped-def]
    """An agent that accepts every recipient at once, in the signature of the spool under test."""
    try:
        from mailbastion.core.outcome import Delivered  # the current spool: DeliveryRequest in, outcomes out
        from mailbastion.core.replies import Reply

        ok = Delivered(Reply(250, "2.0.0", "ok"), "bench")

        class Agent:
            async def deliver(self, request):  # type: ignore[no-untyped-def]
                return {a: ok for a in request.addresses}

        return Agent()
    except ImportError:  # before: deliver(record, message) -> {address: Delivered(text)}
        from mailbastion.delivery.agent import Delivered as OldDelivered

        class OldAgent:
            async def deliver(self, record, message):  # type: ignore[no-untyped-def]
                return {r.address: OldDelivered("250 2.0.0 ok") for r in record.pending}

        return OldAgent()


async def _deliver_phase(spool, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    global _fsyncs
    from mailbastion.spool.layout import QueueState
    from mailbastion.spool.manager import QueueManager

    kw: dict[str, object] = {"scan_interval": 0.05, "concurrency": 20}
    if "bounce" in inspect.signature(QueueManager.__init__).parameters:
        kw["bounce"] = lambda *a, **k: None
    qm = QueueManager(spool, _agent(), **kw)  # type: ignore[arg-type]
    _fsyncs, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    await qm.start()
    while spool.layout.ids(QueueState.INCOMING) or spool.layout.ids(QueueState.ACTIVE):
        await asyncio.sleep(0.01)
    await qm.idle()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await qm.stop()
    left = sum(len(spool.layout.ids(s)) for s in QueueState)
    return {"msg_s": round(n / wall, 1), "cpu_ms_msg": round(cpu / n * 1000, 3), "fsyncs_msg": round(_fsyncs / n, 2),
            "wall_s": round(wall, 2), "left": left}


async def main_async(args: argparse.Namespace) -> list[dict[str, object]]:
    from mailbastion.core.address import parse_address
    from mailbastion.core.envelope import Envelope
    from mailbastion.spool.writer import Spool

    root = Path(tempfile.mkdtemp(prefix="spool-bench-", dir=args.dir))
    try:
        spool = Spool(root / "spool", min_free_bytes=0)
        env = Envelope(sender=parse_address("carol@partner.example"),
                       recipients=(parse_address("alice@example.test"),))
        await spool.commit(env, _message(1), client="warmup")  # thread pool and directories warm
        shutil.rmtree(root / "spool")
        spool = Spool(root / "spool", min_free_bytes=0)
        commit = await _commit_phase(spool, env, args.n, args.c)
        deliver = await _deliver_phase(spool, args.n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    import mailbastion

    where = str(Path(mailbastion.__file__).resolve().parents[2])
    return [{"phase": "commit", "c": args.c, "n": args.n, "code": where, **commit},
            {"phase": "deliver", "c": 20, "n": args.n, "code": where, **deliver}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-c", type=int, default=8)
    ap.add_argument("--dir", default=str(REPO / "bench"), help="where the spool is made (not a tmpfs)")
    args = ap.parse_args()
    if "mailbastion" not in sys.modules and not any("src" in p for p in sys.path):
        sys.path.insert(0, str(REPO / "src"))
    os.fsync = _counting_fsync  # counts file and directory fsyncs alike (durable.py calls os.fsync)
    rows = asyncio.run(main_async(args))
    print("phase   | c  | msg/s   | CPU ms/msg | fsyncs/msg | wall s")
    for r in rows:
        print(f"{r['phase']:<7} | {r['c']:<2} | {r['msg_s']:<7} | {r['cpu_ms_msg']:<10} | {r['fsyncs_msg']:<10} | "
              f"{r['wall_s']}")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
