#!/usr/bin/env python3
"""Anti-virus stage benchmark: messages/second through every engine (clamd + YARA + attachment policy),
next to clamd scanning the same messages directly (INSTREAM, one connection per message), in one run.

    .venv/bin/python bench/av_bench.py                        # 2000 messages of the shared mix, concurrency 8
    .venv/bin/python bench/av_bench.py -n 500 -c 1 8 --corpus /tmp/corpus

The message mix is the shared benchmark corpus (../shared/bench/mkcorpus.py: ~5 KB multipart text+HTML,
every tenth with a ~100 KiB PDF-like or ZIP attachment); it is generated into a temp folder when no
--corpus is given. clamd is the Debian daemon started here with the test database (EICAR + the
clamav-testfiles hashes): a production database (~8 M signatures) costs clamd more per byte, so the
absolute clamd figures here are an upper bound; the ratio between the two columns is the point.
The result cache is off (every message is new, as in production). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mailbastion.engines.attachments import AttachmentPolicy
from mailbastion.engines.clamav import ClamdScanner
from mailbastion.engines.yara import YaraScanner
from mailbastion.policy.checks.antivirus import AntivirusCheck
from mailbastion.testing.clamd import EICAR, ClamdTestServer

SHARED_MKCORPUS = ROOT.parent / "shared" / "bench" / "mkcorpus.py"


def load_corpus(path: Path | None, n: int) -> list[bytes]:
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="mb-avbench-")) / "corpus"
        if SHARED_MKCORPUS.exists():
            subprocess.run([sys.executable, str(SHARED_MKCORPUS), "--out", str(path), "-n", str(n)],
                           check=True, stdout=subprocess.DEVNULL)
        else:
            raise SystemExit(f"no corpus: pass --corpus DIR (mkcorpus.py not found at {SHARED_MKCORPUS})")
    files = sorted(path.glob("msg-*.eml"))[:n]
    if not files:
        raise SystemExit(f"no msg-*.eml in {path}")
    return [f.read_bytes() for f in files]


async def clamd_direct(socket_path: str, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(b"zINSTREAM\0")
        for i in range(0, len(raw), 65536):
            chunk = raw[i : i + 65536]
            writer.write(struct.pack(">I", len(chunk)) + chunk)
        writer.write(struct.pack(">I", 0))
        await writer.drain()
        return await reader.readuntil(b"\0")
    finally:
        writer.close()


async def run(label: str, fn, messages: list[bytes], concurrency: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    queue = list(enumerate(messages))
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def worker() -> None:
        while queue:
            _, raw = queue.pop()
            t0 = time.perf_counter()
            out = await fn(raw)
            latencies.append((time.perf_counter() - t0) * 1000)
            outcomes[out] = outcomes.get(out, 0) + 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    total = sum(len(m) for m in messages)
    return {
        "label": label, "concurrency": concurrency, "messages": len(messages),
        "msgs_per_s": round(len(messages) / elapsed, 1), "mb_per_s": round(total / elapsed / 1e6, 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "client_cpu_ms_per_msg": round(cpu * 1000 / len(messages), 2), "outcomes": outcomes,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--count", type=int, default=2000)
    ap.add_argument("-c", "--concurrency", type=int, nargs="+", default=[8])
    ap.add_argument("--corpus", type=Path, default=None)
    args = ap.parse_args()
    messages = load_corpus(args.corpus, args.count)
    server = ClamdTestServer()
    server.start()
    try:
        clamd_pid = server.proc.pid if server.proc else 0
        scanners = [ClamdScanner(socket_path=server.socket_path, pool_size=16), YaraScanner(), AttachmentPolicy()]
        check = AntivirusCheck(scanners, engine_timeout=60)
        # Sanity: both paths must catch EICAR, or the figures mean nothing.
        assert b"FOUND" in await clamd_direct(server.socket_path, b"x " + EICAR)
        assert (await check.scan(b"Subject: t\r\n\r\n" + EICAR + b"\r\n")).findings

        async def direct(raw: bytes) -> str:
            reply = await clamd_direct(server.socket_path, raw)
            return "FOUND" if b"FOUND" in reply else ("OK" if reply.rstrip(b"\0").endswith(b"OK") else "ERROR")

        async def stage(raw: bytes) -> str:
            report = await check.scan(raw)
            if report.failures:
                return "ENGINE_DOWN"
            verdict = check.judge(report)
            return verdict.forced.action.name if verdict.forced else "ACCEPT"

        def clamd_cpu() -> float:
            with open(f"/proc/{clamd_pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        await run("warmup", stage, messages[:50], 4)
        rows = []
        for c in args.concurrency:
            for label, fn in (("clamd INSTREAM direct", direct), ("mailbastion AV stage (clamd+yara+attachments)",
                                                                   stage)):
                before = clamd_cpu()
                row = await run(label, fn, messages, c)
                row["clamd_cpu_ms_per_msg"] = round((clamd_cpu() - before) * 1000 / len(messages), 2)
                rows.append(row)
        await scanners[0].close()  # type: ignore[attr-defined]
    finally:
        server.close()
    print(f"{len(messages)} messages, {sum(len(m) for m in messages) / 1e6:.1f} MB; "
          f"cpus={os.cpu_count()}; python {sys.version.split()[0]}")
    print(f"{'path':48} {'c':>3} {'msg/s':>8} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/msg':>10} "
          f"{'clamd cpu':>9}  outcomes")
    for r in rows:
        print(f"{r['label']:48} {r['concurrency']:>3} {r['msgs_per_s']:>8} {r['mb_per_s']:>7} {r['p50_ms']:>8} "
              f"{r['p99_ms']:>8} {r['client_cpu_ms_per_msg']:>10} {r['clamd_cpu_ms_per_msg']:>9}  {r['outcomes']}")
    print(json.dumps({"bench": "av", "rows": rows}))


if __name__ == "__main__":
    asyncio.run(main())
