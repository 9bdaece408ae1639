#!/usr/bin/env python3
"""Gateway SMTP edge benchmark: our gateway (all edge checks on) against aiosmtpd's bare `Sink`.

    .venv/bin/python bench/gateway_bench.py                    # concurrency 1, 8, 32; 300 messages each
    .venv/bin/python bench/gateway_bench.py --count 1000 --concurrency 1 8 32 64 --uvloop
    .venv/bin/python bench/gateway_bench.py --no-sink          # without aiosmtpd (the `bench` extra)

Each server runs in its own process on 127.0.0.1 (so its peak RSS is its own); one asyncio client in
this process opens one session per message (connect, EHLO, pipelined MAIL/RCPT/DATA, body, QUIT).
Messages are ~5 KB of text; one in ten carries a 100 KB base64 attachment. Latency is per message,
from TCP connect to the reply after the end of DATA.

What "gateway" includes: our protocol engine (limits, smuggling checks; `smtp/`), the
GatewayHandler with the pipeline (relay, recipient, HELO, headers checks and the scorer) and an
in-memory spool (FakeSpool): the durable spool's fsync cost is measured by the spool's own bench.
`CPU ms/msg` is the server process's user+system CPU per message over the level (from /proc), the
steadiest figure on a shared machine; the client runs in this process and is not counted.
The numbers printed are what this machine did in this run; nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

HOST = "127.0.0.1"


# -- messages --------------------------------------------------------------------------------------

def make_messages(n: int, seed: int = 7) -> list[bytes]:
    """Dot-stuffed, CRLF-terminated DATA payloads: ~5 KB text; every tenth with a 100 KB attachment."""
    rnd = random.Random(seed)
    words = ["mail", "gateway", "policy", "report", "meeting", "invoice", "quarterly", "project", "review",
             "security", "update", "tomorrow", "schedule", "budget", "draft", "please", "thanks", "regards"]
    out = []
    for i in range(n):
        text_lines = []
        size = 0
        while size < 5000:
            line = " ".join(rnd.choice(words) for _ in range(12))
            text_lines.append(line)
            size += len(line) + 2
        head = (f"From: Sender {i} <sender{i}@example.org>\r\nTo: alice@example.net\r\n"
                f"Subject: bench message {i}\r\nDate: Sat, 28 Nov 2026 03:00:00 +0000\r\n"
                f"Message-ID: <bench{i}@example.org>\r\nMIME-Version: 1.0\r\n")
        text = "\r\n".join(text_lines)
        if i % 10 == 9:
            blob = base64.encodebytes(rnd.randbytes(75_000)).decode().replace("\n", "\r\n")
            body = (head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
                    "Content-Type: text/plain\r\n\r\n" + text + "\r\n--b1\r\n"
                    "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
                    'Content-Disposition: attachment; filename="data.bin"\r\n\r\n' + blob + "--b1--\r\n")
        else:
            body = head + "Content-Type: text/plain\r\n\r\n" + text + "\r\n"
        lines = body.encode().split(b"\r\n")
        stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in lines)
        out.append(stuffed + b".\r\n" if stuffed.endswith(b"\r\n") else stuffed + b"\r\n.\r\n")
    return out


# -- servers (child processes) ---------------------------------------------------------------------

def _serve_gateway() -> Callable[[], object]:
    async def start() -> object:
        import mailbastion.policy.checks  # noqa: F401
        from mailbastion.apps.gateway import build_gateway
        from mailbastion.config.loader import parse_settings
        from mailbastion.policy.checks.headers import headers
        from mailbastion.policy.checks.helo import HeloCheck
        from mailbastion.policy.checks.recipient import RecipientCheck
        from mailbastion.policy.checks.relay import RelayCheck
        from mailbastion.policy.pipeline import Pipeline
        from mailbastion.policy.scoring import Scorer, load_score_table
        from mailbastion.testing.fakes import FakeRecipients, FakeSpool

        settings = parse_settings({"server": {"hostname": "mx.example.net"},
                                   "smtp": {"listen": [f"{HOST}:0"], "max_connections_per_client": 1000}})
        rec = FakeRecipients({"alice@example.net": "local"})
        checks = [RelayCheck(rec), RecipientCheck(rec), HeloCheck("mx.example.net", rec), headers]
        pipeline = Pipeline(checks, Scorer(load_score_table()))  # type: ignore[arg-type]

        class CountingSpool(FakeSpool):
            async def commit(self, *a: object, **kw: object) -> str:
                qid = await super().commit(*a, **kw)  # type: ignore[arg-type]
                self.commits.clear()  # keep memory flat: count, do not hoard
                return qid

        server = build_gateway(settings, pipeline=pipeline, recipients=rec, spool=CountingSpool(),
                               tls_context=None)
        await server.start()
        return server.ports[0]
    return start


def _serve_sink() -> Callable[[], object]:
    async def start() -> object:
        from aiosmtpd.handlers import Sink
        from aiosmtpd.smtp import SMTP

        handler = Sink()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(handler, hostname="sink.example.net", loop=loop), HOST, 0)
        return server.sockets[0].getsockname()[1]
    return start


def _child(kind: str, use_uvloop: bool, conn: Connection) -> None:
    import logging

    logging.disable(logging.CRITICAL)
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    starter = _serve_gateway() if kind == "gateway" else _serve_sink()

    async def main() -> None:
        port = await starter()  # type: ignore[misc]
        conn.send(port)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- client ----------------------------------------------------------------------------------------

async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def one_session(port: int, payload: bytes) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        if await _reply(reader) != 220:
            raise RuntimeError("banner")
        writer.write(b"EHLO client.example.org\r\n")
        await _reply(reader)
        writer.write(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.net>\r\nDATA\r\n")
        codes = [await _reply(reader) for _ in range(3)]
        if codes != [250, 250, 354]:
            raise RuntimeError(f"envelope {codes}")
        writer.write(payload)
        code = await _reply(reader)
        elapsed = time.perf_counter() - t0
        if code != 250:
            raise RuntimeError(f"end of data {code}")
        writer.write(b"QUIT\r\n")
        await _reply(reader)
        return elapsed
    finally:
        writer.close()


async def run_level(port: int, messages: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    queue = list(range(len(messages)))
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while queue:
            i = queue.pop()
            try:
                latencies.append(await one_session(port, messages[i]))
            except (OSError, RuntimeError, asyncio.IncompleteReadError):
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies, errors


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=300, help="messages per server and concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--uvloop", action="store_true", help="run both servers on uvloop")
    ap.add_argument("--no-sink", action="store_true", help="only our gateway (aiosmtpd is the `bench` extra)")
    args = ap.parse_args()
    messages = make_messages(args.count)
    avg_kb = statistics.mean(len(m) for m in messages) / 1024
    print(f"# {args.count} messages per run, mean {avg_kb:.1f} KiB, one session per message; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loop={'uvloop' if args.uvloop else 'asyncio'}")
    print(f"{'server':<10} {'conc':>4} {'msg/s':>8} {'CPU ms/msg':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
          f"{'peak RSS MB':>11}")
    ctx = multiprocessing.get_context("fork")
    servers = {}
    import importlib.util

    if not args.no_sink and importlib.util.find_spec("aiosmtpd") is None:
        print("# aiosmtpd Sink: skipped (install the `bench` extra for this comparison row)")
        args.no_sink = True
    for kind in ("gateway",) if args.no_sink else ("gateway", "sink"):  # levels interleaved: noise hits both
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(kind, args.uvloop, child))
        proc.start()
        servers[kind] = (proc, parent, parent.recv())
        asyncio.run(one_session_warmup(servers[kind][2], messages[0]))
    rows = []
    for c in args.concurrency:
        for kind, (proc, _conn, port) in servers.items():
            cpu0 = cpu_seconds(proc.pid or 0)
            elapsed, lat, errors = asyncio.run(run_level(port, messages, c))
            cpu = (cpu_seconds(proc.pid or 0) - cpu0) * 1000 / max(len(lat), 1)
            rate = len(lat) / elapsed if elapsed else 0.0
            rows.append(f"{kind:<10} {c:>4} {rate:>8.0f} {cpu:>10.2f} {pct(lat, 50) * 1000:>8.2f} "
                        f"{pct(lat, 99) * 1000:>8.2f} {errors:>6} {peak_rss_mb(proc.pid or 0):>11.1f}")
            print(rows[-1], flush=True)
    for proc, conn, _port in servers.values():
        conn.send("stop")
        proc.join(10)
    return 0


async def one_session_warmup(port: int, payload: bytes) -> None:
    for _ in range(5):
        await one_session(port, payload)


if __name__ == "__main__":
    sys.exit(main())
