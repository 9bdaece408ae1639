#!/usr/bin/env python3
"""The outbound benchmark: the internal host's relay client → the gateway's relay listener (mutual TLS,
outbound checks, spool with fsync) → queue → SMTP agent (MX lookup, outbound TLS policy, opportunistic
STARTTLS, connection cache) → a remote MX sink. A figure, not a test.

    .venv/bin/python bench/outbound_bench.py                       # c = 1, 8, 32; 1000 messages each
    .venv/bin/python bench/outbound_bench.py --count 300 --concurrency 8 --no-clamd

Every outbound check is on: anti-virus (ClamAV through a real clamd with a small test database, which
`testing/clamd.py` makes when Debian's clamav-daemon is installed; YARA; the attachment policy), GTUBE, the
spam rules and the classifier; MTA-STS look-ups (answered "no policy" by the loopback DNS server) and
TLS-RPT recording of every session. The gateway runs as `mailbastion serve --role gateway` in a child
process; the remote MX (aiosmtpd with STARTTLS) and the loopback DNS server run in this process, in
threads, so their CPU is not counted as the gateway's. The client is the internal host's own relay agent
(delivery/relay_client.py: implicit TLS with the internal certificate, sessions reused).

Messages: the shared bench corpus (`../shared/bench`, ~4.8 KB, one in ten with a 100 KiB attachment),
recipients rewritten to the remote domain; without it, generated 5 KB messages (it says which).

Printed per concurrency: messages/s accepted by the relay listener, end-to-end messages/s (until the sink
has every message), p50/p99 relay latency, the gateway's CPU ms per message (utime+stime of its process
tree from /proc, until the sink had them all; the steadiest figure on a shared machine), clamd's CPU ms
per message, the gateway's peak RSS. A JSON line per row goes to bench/results/. The Postfix comparison
row (submission → Postfix smtp client with a content filter) is not run here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "mx"))

from message_path import prepare_anchor_copy, tree_cpu, tree_rss_peak

from mailbastion.testing.certificates import CertAuthority
from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer

WORK = REPO / "bench" / ".work"
RESULTS = REPO / "bench" / "results"
REMOTE = "remote.bench.test"
MX_IP = "127.0.0.2"


def corpus(limit: int) -> tuple[list[tuple[str, list[str], bytes]], str]:
    """(sender, recipients at the remote domain, message) triples, and where they came from."""
    try:
        folder = prepare_anchor_copy() / "corpus"  # a writable copy of ../shared/bench, its corpus made
    except (SystemExit, OSError, subprocess.CalledProcessError):
        folder = None
    if folder is not None and (folder / "manifest.json").exists():
        data = json.loads((folder / "manifest.json").read_text())
        out = []
        for m in data["messages"][:limit]:
            raw = (folder / m["file"]).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            rcpts = [r.split("@")[0] + "@" + REMOTE for r in m["rcpt"]]
            out.append(("alice@bench.example.net", rcpts, raw))
        return out, f"shared corpus ({len(out)} messages)"
    body = b"".join(b"Line %d of a plain business message, nothing to see here.\r\n" % i for i in range(80))
    out = [("alice@bench.example.net", [f"user{i % 50}@{REMOTE}"],
            b"From: alice@bench.example.net\r\nTo: user@" + REMOTE.encode() + b"\r\nSubject: report " + str(i).encode()
            + b"\r\nMessage-ID: <" + str(i).encode() + b"@bench.example.net>\r\n\r\n" + body) for i in range(limit)]
    return out, "generated 5 KB messages (no shared corpus)"


def clamd_server(folder: Path):  # type: ignore[no-untyped-def]
    from mailbastion.testing.clamd import ClamdTestServer, clamd_binary

    if clamd_binary() is None:
        return None
    return ClamdTestServer(folder / "clamd", cache=False).start()


async def send_all(agent, items, count: int, conc: int,  # type: ignore[no-untyped-def]
                   offset: int = 0) -> tuple[float, list[float], int]:
    from mailbastion.core.outcome import Delivered
    from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest

    latencies: list[float] = []
    accepted = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        nonlocal accepted
        while not queue.empty():
            i = queue.get_nowait()
            sender, rcpts, raw = items[(offset + i) % len(items)]
            request = DeliveryRequest("", sender, tuple(DeliveryRecipient(r) for r in rcpts), raw)
            t0 = time.perf_counter()
            out = await agent.deliver(request)
            latencies.append(time.perf_counter() - t0)
            if all(isinstance(o, Delivered) for o in out.values()):
                accepted += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return time.monotonic() - t0, latencies, accepted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--workers", type=int, default=1, help="server.workers (the relay listener runs in the parent)")
    ap.add_argument("--no-clamd", action="store_true", help="ClamAV off (YARA and the attachment policy only)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mb-outbound-", dir=WORK))
    concs = [int(c) for c in args.concurrency.split(",")]
    # Each run sends messages of its own, so that no run meets the anti-virus results cached by the one before.
    items, source = corpus(50 + args.count * len(concs))
    from mx_world import SinkThread

    from mailbastion.config import load_settings
    from mailbastion.delivery.relay_client import relay_agent_from_settings
    from mailbastion.dns.resolver import DnsResolver

    clamd = None if args.no_clamd else clamd_server(tmp)
    port = free_port()
    ca = CertAuthority.create(tmp / "remote-ca", "Remote MX CA")
    with DnsTestServer() as dns, SinkThread() as sinks:
        dns.add(REMOTE, "MX", f"10 mx.{REMOTE}")
        dns.add(f"mx.{REMOTE}", "A", MX_IP)
        sink = sinks.start(f"mx.{REMOTE}", MX_IP, port, ca.issue(tmp / "mx", [f"mx.{REMOTE}"]))
        settings = {
            ("server", "workers"): str(args.workers), ("server", "log_level"): '"warning"',
            ("relay_in", "listen"): f'["127.0.0.1:{free_port()}"]', ("delivery", "remote_port"): str(port),
            ("antivirus", "stale_policy"): '"alarm_only"',
        }
        if clamd is not None:
            settings.update({("antivirus.clamav", "enabled"): "true",
                             ("antivirus.clamav", "socket"): f'"{clamd.socket_path}"'})
        else:
            settings[("antivirus.clamav", "enabled")] = "false"
        d = Deployment(tmp / "gw", dns=dns, domain="bench.example.net", settings=settings)
        d.init()
        d.start(role="gateway")
        assert d.proc is not None
        pid = d.proc.pid
        agent = relay_agent_from_settings(load_settings(d.config), DnsResolver([dns.host], port=dns.port))
        rows: list[dict[str, object]] = []

        async def until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + timeout
            while not condition():
                if time.monotonic() > deadline:
                    raise TimeoutError(what)
                await asyncio.sleep(0.02)

        async def run_all() -> None:
            warm = min(50, len(items))
            await send_all(agent, items, warm, 4)
            await until(lambda: len(sink.received) >= warm, 300, "warm-up delivery")
            for n, conc in enumerate(concs):
                before = len(sink.received)
                cpu0 = tree_cpu(pid)
                clamd0 = tree_cpu(clamd.proc.pid) if clamd is not None and clamd.proc else 0.0
                t0 = time.monotonic()
                relay_s, lat, accepted = await send_all(agent, items, args.count, conc, offset=warm + n * args.count)
                await until(lambda a=accepted, b=before: len(sink.received) - b >= a, 900,
                            "delivery of every accepted message")
                e2e = time.monotonic() - t0
                cpu = tree_cpu(pid) - cpu0
                clamd_cpu = (tree_cpu(clamd.proc.pid) - clamd0) if clamd is not None and clamd.proc else 0.0
                lat.sort()
                row = {
                    "bench": "outbound", "source": source, "clamd": clamd is not None, "c": conc,
                    "count": args.count, "accepted": accepted, "relay_msg_s": round(accepted / relay_s, 1),
                    "e2e_msg_s": round(accepted / e2e, 1),
                    "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
                    "p99_ms": round(lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000, 1) if lat else None,
                    "cpu_ms_msg": round(cpu / max(accepted, 1) * 1000, 2),
                    "clamd_cpu_ms_msg": round(clamd_cpu / max(accepted, 1) * 1000, 2),
                    "rss_mb": round(tree_rss_peak(pid) / 2**20), "connections_to_mx": sink.connections,
                    "load": round(os.getloadavg()[0], 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
            await agent.close()

        try:
            asyncio.run(run_all())
        finally:
            d.stop()
            if clamd is not None:
                clamd.stop()
    with open(RESULTS / f"outbound-{time.strftime('%Y%m%dT%H%M%S')}.jsonl", "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    print(f"\noutbound: relay client -> relay listener (mutual TLS, every outbound check) -> spool -> SMTP agent "
          f"-> remote MX; {source}; ClamAV {'on (test database)' if clamd else 'off'}")
    print(f"{'c':>4} {'relay msg/s':>12} {'e2e msg/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/msg':>11} "
          f"{'clamd ms/msg':>13} {'RSS MB':>7}")
    for r in rows:
        print(f"{r['c']:>4} {r['relay_msg_s']:>12} {r['e2e_msg_s']:>10} {r['p50_ms']:>8} {r['p99_ms']:>8} "
              f"{r['cpu_ms_msg']:>11} {r['clamd_cpu_ms_msg']:>13} {r['rss_mb']:>7}")
    print("Postfix (submission -> smtp client with a content filter): comparison row not run here.")
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
