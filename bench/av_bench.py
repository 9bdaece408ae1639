#!/usr/bin/env python3
"""Anti-virus stage benchmark: detection and messages/second through every engine (clamd + YARA +
attachment policy), next to clamd scanning the same messages directly, in one run.

    .venv/bin/python bench/av_bench.py                       # throughput, 2000 messages of the shared mix, c = 8
    .venv/bin/python bench/av_bench.py -n 500 -c 1 8 --corpus /tmp/corpus --reps 3
    .venv/bin/python bench/av_bench.py --detection --no-throughput   # the clamav-testfiles x wrappings matrix

Two ways of feeding clamd are compared (`--variants`):

- `parts`: each distinct decoded part once (MIME leaves, attached messages, archive members), and the raw
  message only for the messages whose MIME the walk found malformed (the default);
- `whole+parts`: the raw message too (`antivirus.clamav.scan_whole_message = true`), so clamd also runs its
  own MIME parser and its mail-level signatures over the whole message.

Throughput: the message mix is the shared benchmark corpus (../shared/bench/mkcorpus.py: ~5 KB multipart
text+HTML, every tenth with a ~100 KiB PDF-like or ZIP attachment); it is generated into a temp folder when no
--corpus is given. Rows are interleaved over `--reps` repetitions and the median of each figure is shown.
CPU per message is the steadiest figure on a shared machine: ours (client) plus clamd's.

Detection (`--detection`): every file of Debian's clamav-testfiles, and EICAR, in each of the wrappings of
`mailbastion.testing.av.WRAPPINGS` (14), through the whole stage, per variant: how many clamd found, how many the
stage refused or quarantined, and which ones clamd missed. "clamd, raw message only" is clamd's own MIME parser
alone (what the raw pass contributes).

clamd is the Debian daemon started here (its cache of clean results off: `DisableCache yes`, or every row
after the first would be answered from it) with the test database (EICAR + the clamav-testfiles hashes): a
production database (~8 M signatures) costs clamd more per byte, so absolute clamd figures here are a lower
bound; the comparison between the rows is the point. The result cache is off (every message is new, as in
production). Prints tables and one JSON line.
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
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mailbastion.core.message import SpooledMessage
from mailbastion.engines.attachments import AttachmentPolicy
from mailbastion.engines.base import FindingKind, Scanner
from mailbastion.engines.clamav import ClamdScanner
from mailbastion.engines.mime_walk import build_subject
from mailbastion.engines.yara import YaraScanner
from mailbastion.policy.checks.antivirus import AntivirusCheck
from mailbastion.testing import av
from mailbastion.testing.clamd import EICAR, ClamdTestServer, testfiles

SHARED_MKCORPUS = Path(os.environ.get("MB_SHARED_BENCH", ROOT.parent / "shared" / "bench")) / "mkcorpus.py"
FALLBACK_MKCORPUS = Path("/work/shared/bench/mkcorpus.py")
VARIANTS = {"parts": False, "whole+parts": True}


def load_corpus(path: Path | None, n: int) -> list[bytes]:
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="mb-avbench-")) / "corpus"
        script = next((p for p in (SHARED_MKCORPUS, FALLBACK_MKCORPUS) if p.exists()), None)
        if script is None:
            raise SystemExit(f"no corpus: pass --corpus DIR (mkcorpus.py not found at {SHARED_MKCORPUS})")
        subprocess.run([sys.executable, str(script), "--out", str(path), "-n", str(n)], check=True,
                       stdout=subprocess.DEVNULL)
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


def stage_check(socket_path: str, whole: bool, yara: YaraScanner) -> tuple[AntivirusCheck, ClamdScanner]:
    clamd = ClamdScanner(socket_path=socket_path, pool_size=16, scan_timeout=60, scan_whole_message=whole)
    scanners: list[Scanner] = [clamd, yara, AttachmentPolicy()]
    return AntivirusCheck(scanners, engine_timeout=60), clamd


async def run(label: str, fn: Callable[[bytes], Awaitable[str]], messages: list[bytes], concurrency: int,
              clamd_cpu: Callable[[], float]) -> dict[str, object]:
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

    clamd0 = clamd_cpu()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    total = sum(len(m) for m in messages)
    client = cpu * 1000 / len(messages)
    clamd = (clamd_cpu() - clamd0) * 1000 / len(messages)
    return {
        "label": label, "concurrency": concurrency, "messages": len(messages),
        "msgs_per_s": round(len(messages) / elapsed, 1), "mb_per_s": round(total / elapsed / 1e6, 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)], 2),
        "client_cpu_ms_per_msg": round(client, 2), "clamd_cpu_ms_per_msg": round(clamd, 2),
        "total_cpu_ms_per_msg": round(client + clamd, 2), "outcomes": outcomes,
    }


def median_rows(rows: list[dict[str, object]]) -> dict[str, object]:
    out = dict(rows[0])
    for key in ("msgs_per_s", "mb_per_s", "p50_ms", "p99_ms", "client_cpu_ms_per_msg", "clamd_cpu_ms_per_msg",
                "total_cpu_ms_per_msg"):
        out[key] = round(statistics.median(float(r[key]) for r in rows), 2)  # type: ignore[arg-type]
    out["reps"] = len(rows)
    return out


async def throughput(server: ClamdTestServer, messages: list[bytes], args: argparse.Namespace,
                     yara: YaraScanner) -> list[dict[str, object]]:
    clamd_pid = server.proc.pid if server.proc else 0

    def clamd_cpu() -> float:
        with open(f"/proc/{clamd_pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def direct(raw: bytes) -> str:
        reply = await clamd_direct(server.socket_path, raw)
        return "FOUND" if b"FOUND" in reply else ("OK" if reply.rstrip(b"\0").endswith(b"OK") else "ERROR")

    stages: dict[str, tuple[AntivirusCheck, ClamdScanner]] = {
        v: stage_check(server.socket_path, VARIANTS[v], yara) for v in args.variants}

    def stage_fn(check: AntivirusCheck) -> Callable[[bytes], Awaitable[str]]:
        async def stage(raw: bytes) -> str:
            report = await check.scan(SpooledMessage(raw))  # a fresh message: nothing parsed yet
            if report.failures:
                return "ENGINE_DOWN"
            verdict = check.judge(report)
            return verdict.forced.action.name if verdict.forced else "ACCEPT"
        return stage

    paths: list[tuple[str, Callable[[bytes], Awaitable[str]]]] = [("clamd INSTREAM direct (raw message)", direct)]
    paths += [(f"AV stage, clamd gets {v}", stage_fn(check)) for v, (check, _) in stages.items()]
    for _, fn in paths:  # warm-up: clamd's first scans and our imports are not what we measure
        await run("warmup", fn, messages[:50], 4, clamd_cpu)
    cells: dict[tuple[str, int], list[dict[str, object]]] = {}
    for _rep in range(args.reps):
        for c in args.concurrency:
            for label, fn in paths:
                cells.setdefault((label, c), []).append(await run(label, fn, messages, c, clamd_cpu))
    for _, clamd in stages.values():
        await clamd.close()
    return [median_rows(r) for r in cells.values()]


def raw_pass_count(messages: list[bytes]) -> int:
    """How many of these messages the `parts` variant also sends whole (their MIME is not well formed)."""
    return sum(not build_subject(SpooledMessage(raw)).well_formed for raw in messages)


async def detection(server: ClamdTestServer, args: argparse.Namespace, yara: YaraScanner) -> dict[str, object]:
    samples = [("eicar.com", EICAR)] + [(p.name, p.read_bytes()) for p in testfiles()]
    cases = [(w, name, av.WRAPPINGS[w](data, name)) for w in sorted(av.WRAPPINGS) for name, data in samples]
    result: dict[str, object] = {"samples": len(samples), "wrappings": len(av.WRAPPINGS), "messages": len(cases),
                                 "raw_pass_in_parts_variant": raw_pass_count([raw for _, _, raw in cases])}
    raw_missed = [f"{w}/{name}" for w, name, raw in cases if b"FOUND" not in await clamd_direct(server.socket_path, raw)]
    result["clamd raw message only"] = {"clamd_found": len(cases) - len(raw_missed), "clamd_missed": raw_missed}
    for variant in args.variants:
        check, clamd = stage_check(server.socket_path, VARIANTS[variant], yara)
        found = refused = 0
        missed: list[str] = []
        t0 = time.perf_counter()
        for wrapping, name, raw in cases:
            report = await check.scan(SpooledMessage(raw))  # a fresh message: nothing parsed yet
            verdict = check.judge(report)
            hit = any(f.engine == "clamav" and f.kind is FindingKind.MALWARE for f in report.findings)
            found += hit
            if not hit:
                missed.append(f"{wrapping}/{name}")
            refused += verdict.forced is not None and verdict.forced.action.name in ("REJECT", "QUARANTINE")
        await clamd.close()
        result[variant] = {"clamd_found": found, "refused_or_quarantined": refused, "clamd_missed": missed,
                           "seconds": round(time.perf_counter() - t0, 1)}
    return result


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--count", type=int, default=2000)
    ap.add_argument("-c", "--concurrency", type=int, nargs="+", default=[8])
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--reps", type=int, default=1, help="interleaved repetitions; the median is shown")
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["parts", "whole+parts"])
    ap.add_argument("--detection", action="store_true", help="run the clamav-testfiles x wrappings matrix")
    ap.add_argument("--no-throughput", dest="throughput", action="store_false")
    args = ap.parse_args()
    messages = load_corpus(args.corpus, args.count) if args.throughput else []
    # clamd's cache of clean results would answer every rep after the first (and the direct pass would warm it
    # for the stage): off, so each row measures scanning, as for new mail in production.
    server = ClamdTestServer(cache=False)
    server.start()
    yara = YaraScanner()
    out: dict[str, object] = {"bench": "av"}
    try:
        assert b"FOUND" in await clamd_direct(server.socket_path, b"x " + EICAR)  # or the figures mean nothing
        if args.detection:
            out["detection"] = det = await detection(server, args, yara)
            print(f"detection: {det['samples']} samples (EICAR + clamav-testfiles) x {det['wrappings']} wrappings "
                  f"= {det['messages']} messages ({det['raw_pass_in_parts_variant']} with malformed MIME, sent whole "
                  "too in the parts variant)")
            raw_only = det["clamd raw message only"]
            print(f"  {'clamd, raw message only':28} clamd found {raw_only['clamd_found']:>4}   missed: "  # type: ignore[index]
                  + ", ".join(raw_only["clamd_missed"]))  # type: ignore[index]
            for v in args.variants:
                d = det[v]
                print(f"  {'AV stage, clamd gets ' + v:28} clamd found {d['clamd_found']:>4}   refused or quarantined "  # type: ignore[index]
                      f"{d['refused_or_quarantined']:>4}   ({d['seconds']} s)")  # type: ignore[index]
                for miss in d["clamd_missed"]:  # type: ignore[index]
                    print(f"      clamd missed {miss}")
        if args.throughput:
            rows = await throughput(server, messages, args, yara)
            out["rows"] = rows
            out["raw_pass_in_parts_variant"] = whole = raw_pass_count(messages)
            print(f"{len(messages)} messages, {sum(len(m) for m in messages) / 1e6:.1f} MB ({whole} with malformed MIME); "
                  f"cpus={os.cpu_count()}; python {sys.version.split()[0]}; median of {args.reps} interleaved run(s)")
            print(f"{'path':40} {'c':>3} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ours ms':>8} {'clamd ms':>8} "
                  f"{'total ms':>8}  outcomes")
            for r in rows:
                print(f"{r['label']:40} {r['concurrency']:>3} {r['msgs_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} "
                      f"{r['client_cpu_ms_per_msg']:>8} {r['clamd_cpu_ms_per_msg']:>8} {r['total_cpu_ms_per_msg']:>8}"
                      f"  {r['outcomes']}")
    finally:
        server.close()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
