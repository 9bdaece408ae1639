#!/usr/bin/env python3
"""The submission benchmark: users' clients → submission (implicit TLS, AUTH PLAIN with argon2 once per
connection, sender binding, limits, DKIM signing rsa-sha256 + ed25519) → relay hop to the gateway (mutual
TLS) → the gateway's outbound checks (YARA, attachment policy, spam rules and classifier; ClamAV off) →
spool with fsync → SMTP client → a remote MX sink found through the loopback DNS. A figure, not a test.

    PYTHONPATH=src .venv/bin/python bench/submission_bench.py                  # 300 messages, c = 1, 8
    PYTHONPATH=src .venv/bin/python bench/submission_bench.py --count 1000 --concurrency 16

One `mailbastion serve` (all-in-one) child process; the sink, the DNS server and the clients run in this
process, so their CPU is not counted. Each client connection logs in once and sends `--per-connection`
messages (a mail client sending a batch). Printed per concurrency: messages/s accepted by submission,
end-to-end messages/s (until the sink has them all), p50/p99 submission latency (end of DATA → 250), and
the server's CPU ms per message (utime+stime of its process tree from /proc). The Postfix comparison is not
run here. Limits are raised for the run (one account sends everything).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "submission"))

import aiosmtplib
from message_path import tree_cpu
from submission_world import ALICE, PASSWORD, SinkThread, publish_dkim, remote_mx

from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer

RESULTS = REPO / "bench" / "results"
BODY = "".join(f"Line {i} of a plain business message, nothing to see here.\r\n" for i in range(80))


def message(i: int) -> bytes:
    return (f"From: Alice <{ALICE}>\r\nTo: <user{i % 50}@remote.test>\r\nSubject: report {i}\r\n"
            f"Date: {formatdate()}\r\nMessage-ID: <bench.{i}.{time.time_ns()}@example.test>\r\n\r\n{BODY}").encode()


async def client(port: int, ctx: ssl.SSLContext, ids: list[int], latencies: list[float]) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=True, tls_context=ctx, timeout=120)
    await smtp.connect()
    await smtp.login(ALICE, PASSWORD)
    for i in ids:
        t = time.perf_counter()
        await smtp.sendmail(ALICE, [f"user{i % 50}@remote.test"], message(i))
        latencies.append(time.perf_counter() - t)
    await smtp.quit()


async def run(port: int, ctx: ssl.SSLContext, count: int, concurrency: int, per_connection: int) -> list[float]:
    latencies: list[float] = []
    batches = [list(range(s, min(s + per_connection, count))) for s in range(0, count, per_connection)]
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            await client(port, ctx, queue.get_nowait(), latencies)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 8])
    ap.add_argument("--per-connection", type=int, default=10)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="submission-bench-") as tmp, DnsTestServer() as dns, SinkThread() as sinks:
        root = Path(tmp)
        sink_port = free_port()
        sink = remote_mx(root, dns, sinks, sink_port)
        big = str(10 * args.count * max(args.concurrency))
        d = Deployment(root / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("delivery", "remote_port"): str(sink_port), ("server", "log_level"): '"warning"',
            ("submission.limits", "messages_per_hour"): big, ("submission.limits", "messages_per_day"): big,
            ("submission.limits", "recipients_per_hour"): big, ("submission.limits", "recipients_per_day"): big,
            ("submission.hijack", "fanout_recipients"): "1000"})
        d.init()
        d.mb("account", "add", ALICE, "--password-stdin", input=f"{PASSWORD}\n")
        signing = publish_dkim(d, dns)
        d.start()
        ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
        ctx.check_hostname = False
        try:
            assert d.proc is not None
            asyncio.run(run(d.submissions_port, ctx, 20, 2, 10))  # warm-up: models, keys, sessions
            wait_for(lambda: len(sink.received) >= 20)
            print(f"submission → gateway → remote MX, DKIM selectors {', '.join(signing)}, ClamAV off")
            print(f"{'c':>4} {'accepted/s':>11} {'end-to-end/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/msg':>11}")
            for c in args.concurrency:
                before_sink, cpu0, t0 = len(sink.received), tree_cpu(d.proc.pid), time.perf_counter()
                lat = asyncio.run(run(d.submissions_port, ctx, args.count, c, args.per_connection))
                accepted = time.perf_counter() - t0
                wait_for(lambda n=before_sink: len(sink.received) >= n + args.count, timeout=600)
                total, cpu = time.perf_counter() - t0, tree_cpu(d.proc.pid) - cpu0
                lat.sort()
                row = {"bench": "submission", "concurrency": c, "count": args.count,
                       "accepted_per_s": args.count / accepted, "end_to_end_per_s": args.count / total,
                       "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
                       "cpu_ms_per_msg": 1000 * cpu / args.count}
                print(f"{c:>4} {row['accepted_per_s']:>11.1f} {row['end_to_end_per_s']:>13.1f} {row['p50_ms']:>8.1f} "
                      f"{row['p99_ms']:>8.1f} {row['cpu_ms_per_msg']:>11.2f}")
                with open(RESULTS / "submission.jsonl", "a") as out:
                    out.write(json.dumps(row) + "\n")
        finally:
            d.stop()


def wait_for(condition, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the sink did not get every message")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
