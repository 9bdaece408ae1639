#!/usr/bin/env python3
"""Memory of a running server (RSS and PSS of its whole process tree), the figures of issue 9:

    .venv/bin/python bench/memory_bench.py                    # workers = 1 and workers = 2, every check on
    .venv/bin/python bench/memory_bench.py --messages 3000    # longer mixed traffic

For each `server.workers` it starts `mailbastion serve` (all-in-one, `mailbastion init` defaults with
every check on; ClamAV is off unless a clamd answers on `--clamd`), then prints the RSS and the PSS of
the whole process tree (parent, SMTP acceptors, the MDA's process) at these moments. RSS counts a page
the forked processes share once per process; PSS splits it between them, so the PSS sum is what the
server takes from the machine in all:

  fresh      after start and one message (every check has run once: models and rule sets are loaded)
  sessions   with `--sessions` (500) SMTP sessions open at once, each greeted and past EHLO
  traffic    after `--messages` messages of mixed traffic (business mail, spam-like mail, and malware in
             every wrapping of mailbastion.testing.av, which the anti-virus stage refuses), once idle
  idle       after the sessions are closed and the queue is empty

With `--minutes M` the traffic runs for M minutes at `--rate` messages a second (the issue's "hours of
mixed traffic"), the tree's RSS/PSS is sampled every `--sample-seconds` into the result's `samples`, and
after the traffic 500 sessions are held open once more (`sessions_after_mib`): the `workers = 1` aim
(≤ 300 MB RSS at 500 open sessions) is checked fresh and after the hours.

    .venv/bin/python bench/memory_bench.py --workers 1 --minutes 120 --rate 5 --clamd 127.0.0.1:3311 \
        --clamd-db bench/.work/anchor/anchors/.state/clamdb --corpus bench/.work/anchor/corpus

`--corpus` mixes the anchors' corpus (2,000 messages of business mail, newsletters and spam, some with
attachments; `message_path.py` prepares it) into the traffic: three corpus messages to one EICAR wrapping.

Each figure is taken once no probe child of the portal's dashboard runs (`av status --json`, started at
start-up and when an administrator opens the dashboard after its cache expired, for a few seconds); the
largest such child seen is printed apart as probe_child_mib, and the processes of the fresh tree too.

Nothing is hard-coded; the figures go to stdout and bench/results/memory-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
RESULTS = REPO / "bench" / "results"

from mailbastion.testing.av import WRAPPINGS
from mailbastion.testing.clamd import EICAR
from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _field(path: str, name: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> int:
    """RSS summed over the tree: pages the forked processes share are counted once per process."""
    return sum(_field(f"/proc/{pid}/status", "VmRSS:") for pid in _tree(root))


def tree_pss(root: int) -> int:
    """PSS summed over the tree (each shared page split between its sharers): the memory the server takes
    from the machine in all."""
    return sum(_field(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in _tree(root))


def tree_memory(root: int) -> tuple[int, int]:
    return tree_rss(root), tree_pss(root)


def tree_detail(root: int) -> list[dict[str, object]]:
    """Each process of the tree: pid, command line (shortened), RSS and PSS in MiB."""
    out = []
    for pid in _tree(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out.append({"pid": pid, "cmd": cmd[-80:], "rss_mib": round(_field(f"/proc/{pid}/status", "VmRSS:") / 2**20),
                    "pss_mib": round(_field(f"/proc/{pid}/smaps_rollup", "Pss:") / 2**20)})
    return out


def probe_children(root: int) -> list[int]:
    """The portal's live-measure probe (`mailbastion av status --json`, run as a child at start and when an
    administrator opens the dashboard after its cache expired): short-lived, not part of the steady state."""
    return [p["pid"] for p in tree_detail(root) if " av status " in f" {p['cmd']} "]  # type: ignore[misc]


def settle(root: int, timeout: float = 120.0) -> int:
    """Wait until no probe child runs; the largest probe RSS seen (bytes), 0 when none ran."""
    seen = 0
    deadline = time.monotonic() + timeout
    while (pids := probe_children(root)) and time.monotonic() < deadline:
        seen = max(seen, sum(_field(f"/proc/{pid}/status", "VmRSS:") for pid in pids))
        time.sleep(0.2)
    return seen


def business(n: int) -> bytes:
    return (f"From: Carol <carol@partner.example>\r\nTo: alice@example.test\r\nSubject: Minutes {n}\r\n"
            f"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m{n}@partner.example>\r\n\r\n"
            + "Please find the minutes of our meeting below.\r\n" * 40).encode()


def spammy(n: int) -> bytes:
    return (f"From: \"Prize Dept\" <win@lottery.example>\r\nTo: alice@example.test\r\nSubject: WINNER {n}!!!\r\n"
            f"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <s{n}@lottery.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html\r\n\r\n<p>Claim your prize now: <a href=\"http://192.0.2.9/claim\">"
            "https://bank.example/secure</a></p>\r\n").encode()


def load_corpus(folder: Path) -> list[tuple[str, bytes]]:
    """The anchors' corpus (`mkcorpus.py` of ../shared/bench: business mail, newsletters and spam, a share with
    attachments) as (envelope sender, message) pairs; every one goes to alice, whatever its To says."""
    manifest = json.loads((folder / "manifest.json").read_text())
    return [(m["mail_from"], (folder / m["file"]).read_bytes()) for m in manifest["messages"]]


def traffic(d: Deployment, count: int, *, minutes: float = 0.0, rate: float = 0.0,
            sample: Callable[[], None] | None = None, sample_seconds: float = 60.0,
            corpus: list[tuple[str, bytes]] | None = None) -> dict[str, int]:
    """`count` messages, or with `minutes` as many as `rate` a second allows for that long (calling `sample`
    every `sample_seconds`). Without a `corpus`: business mail, spam-like mail and EICAR in every wrapping, in
    turn. With one: three corpus messages, then one EICAR wrapping, in turn."""
    malware = [(lambda n, w=w: w(EICAR, "eicar.com")) for w in WRAPPINGS.values()]
    kinds = [business, spammy, *malware]
    out = {"accepted": 0, "refused": 0, "malware_accepted": 0, "malware_refused": 0}
    start = time.monotonic()
    next_sample = start + sample_seconds
    n = 0
    while (n < count) if not minutes else (time.monotonic() - start < minutes * 60):
        if minutes and rate:
            wait = start + n / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        if sample is not None and time.monotonic() >= next_sample:
            sample()
            next_sample += sample_seconds
        sender = "carol@partner.example"
        if corpus is None:
            message = kinds[n % len(kinds)](n)
            is_malware = n % len(kinds) >= 2
        elif n % 4 == 3:
            message, is_malware = malware[(n // 4) % len(malware)](n), True
        else:
            sender, message = corpus[(n - n // 4) % len(corpus)]
            is_malware = False
        n += 1
        try:
            with smtplib.SMTP("127.0.0.1", d.smtp_port, local_hostname="mx.partner.example", timeout=60) as s:
                s.sendmail(sender, ["alice@example.test"], message)
            out["accepted"] += 1
            out["malware_accepted"] += is_malware
        except smtplib.SMTPException:
            out["refused"] += 1
            out["malware_refused"] += is_malware
    return out


async def hold_sessions(port: int, count: int, measure: Callable[[], tuple[int, int]]) -> tuple[int, int]:
    conns = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"EHLO mx.partner.example\r\n")
        await writer.drain()
        while (await reader.readline())[3:4] != b" ":
            pass
        conns.append(writer)
    rss = measure()
    for w in conns:
        w.close()
    return rss


def run(workers: int, args: argparse.Namespace) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix=f"mb-memory-{workers}-"))
    with DnsTestServer() as dns:
        settings = {("server", "workers"): str(workers), ("server", "log_level"): '"warning"',
                    ("smtp", "max_connections_per_client"): str(args.sessions + 50),
                    ("smtp", "max_connections"): str(args.sessions + 100),
                    ("spam.ratelimit", "per_client"): "100000000", ("spam.ratelimit", "per_sender"): "100000000"}
        if args.clamd:
            if not args.clamd_db:
                sys.exit("memory_bench: --clamd needs --clamd-db, the signature folder that clamd loads (else the "
                         "signatures' age is unknown and antivirus.stale_policy refuses every message)")
            settings.update({("antivirus.clamav", "enabled"): "true",
                             ("antivirus.clamav", "address"): f'"{args.clamd}"',
                             ("antivirus.clamav", "database_dir"): f'"{args.clamd_db}"',
                             ("antivirus.clamav", "undated_signatures"): '"newest_file"'})
        else:
            settings.update({("antivirus.clamav", "enabled"): "false",
                             ("antivirus", "stale_policy"): '"alarm_only"'})
        d = Deployment(root, dns=dns, settings=settings)
        d.init()
        d.mb("account", "add", "alice@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
        d.start()
        assert d.proc is not None
        pid = d.proc.pid
        try:
            traffic(d, 1)
            probe = settle(pid)
            fresh = tree_memory(pid)
            detail = tree_detail(pid)
            sessions = asyncio.run(hold_sessions(d.smtp_port, args.sessions, lambda: (settle(pid), tree_memory(pid))[1]))
            started = time.monotonic()
            samples: list[dict[str, float]] = []

            def sample() -> None:
                rss, pss = tree_memory(pid)
                samples.append({"minute": round((time.monotonic() - started) / 60, 1),
                                "rss_mib": round(rss / 2**20), "pss_mib": round(pss / 2**20)})
                print(json.dumps(samples[-1]), file=sys.stderr, flush=True)

            counts = traffic(d, args.messages, minutes=args.minutes, rate=args.rate, sample=sample,
                             sample_seconds=args.sample_seconds,
                             corpus=load_corpus(Path(args.corpus)) if args.corpus else None)
            if not counts["accepted"]:
                print("memory_bench: no message was accepted: the traffic measured refusals only (see the "
                      f"server's log in {root})", file=sys.stderr)
            seconds = time.monotonic() - started
            deadline = time.monotonic() + 120
            while d.spool_files() and time.monotonic() < deadline:
                time.sleep(0.2)
            sessions_after = asyncio.run(hold_sessions(d.smtp_port, args.sessions,
                                                       lambda: (settle(pid), tree_memory(pid))[1]))
            idle = (settle(pid), tree_memory(pid))[1]
            idle_detail = tree_detail(pid)
        finally:
            d.stop(signal.SIGTERM)
    mib = 2**20
    return {"workers": workers, "fresh_mib": round(fresh[0] / mib), "fresh_pss_mib": round(fresh[1] / mib),
            "sessions": args.sessions, "sessions_mib": round(sessions[0] / mib),
            "sessions_pss_mib": round(sessions[1] / mib), "messages": args.messages if not args.minutes else None,
            "minutes": args.minutes or None, "rate": args.rate if args.minutes else None, **counts,
            "traffic_seconds": round(seconds, 1), "samples": samples,
            "sessions_after_traffic_mib": round(sessions_after[0] / mib),
            "sessions_after_traffic_pss_mib": round(sessions_after[1] / mib),
            "idle_after_traffic_mib": round(idle[0] / mib),
            "idle_after_traffic_pss_mib": round(idle[1] / mib), "clamd": bool(args.clamd),
            "probe_child_mib": round(probe / mib), "fresh_processes": detail,
            "idle_after_traffic_processes": idle_detail}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="run the traffic for this long instead of --messages (at --rate messages a second)")
    ap.add_argument("--rate", type=float, default=5.0, help="messages a second with --minutes (0: as fast as it goes)")
    ap.add_argument("--sample-seconds", type=float, default=60.0, help="RSS/PSS sample interval during the traffic")
    ap.add_argument("--clamd", default=None, help="host:port of a clamd with signatures (e.g. the anchors' 3311)")
    ap.add_argument("--clamd-db", default=None,
                    help="the folder that clamd's signatures are in (the anchors': bench/.work/anchor/anchors/.state/clamdb)")
    ap.add_argument("--corpus", default=None,
                    help="mix the anchors' corpus into the traffic (bench/.work/anchor/corpus: three corpus messages "
                         "to one EICAR wrapping) instead of the two generated messages")
    args = ap.parse_args()
    rows = [run(int(w), args) for w in args.workers.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
