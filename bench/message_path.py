#!/usr/bin/env python3
"""The message-path benchmark: client → gateway → spool (fsync) → LMTP over mutual TLS → MDA → Maildir.

    .venv/bin/python bench/message_path.py                         # ours and aiosmtpd's Sink (`bench` extra), c = 1, 8, 32
    .venv/bin/python bench/message_path.py --postfix               # + Postfix relaying to an LMTP sink (root)
    .venv/bin/python bench/message_path.py --profile full          # every filter on (auth, AV w/o clamd, spam)

It drives every server with the same client, `loadgen.py` of `../shared/bench` (the one the anchor figures
come from: one message per session, PIPELINING, XCLIENT from 127.0.0.1 so that each session looks like
an outside host), over the corpus that `mkcorpus.py` makes there (~4.8 KB messages, one in ten with a
100 KiB attachment). It needs that folder; it says so when it is absent.

For each server and concurrency it prints messages/s (accepted by the server), end-to-end messages/s
(until the queue is empty and every message is in a Maildir), p50/p99 latency, the server's CPU per
message (utime+stime of its whole process tree from /proc, measured until the queue drained, the
steadiest figure on a shared machine) and its peak RSS. Nothing is hard-coded; a JSON line per cell
goes to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = Path(os.environ.get("MAILBASTION_SHARED_BENCH", REPO.parent / "shared" / "bench"))
WORK = REPO / "bench" / ".work"
RESULTS = REPO / "bench" / "results"
HZ = os.sysconf("SC_CLK_TCK")
PY = sys.executable


def prepare_anchor_copy() -> Path:
    """A writable copy of ../shared/bench (it is read-only) with its corpus made."""
    if not (SHARED_BENCH / "loadgen.py").exists():
        sys.exit(f"message_path: {SHARED_BENCH} is absent: it holds the shared load generator and corpus "
                 "(set MAILBASTION_SHARED_BENCH to its folder)")
    dest = WORK / "anchor"
    if not dest.exists():
        shutil.copytree(SHARED_BENCH, dest, ignore=shutil.ignore_patterns(".venv", ".state", "results", "corpus"))
        for p in dest.rglob("*"):
            p.chmod(p.stat().st_mode | 0o200)
    if not (dest / "corpus" / "manifest.json").exists():
        subprocess.run([PY, str(dest / "mkcorpus.py")], check=True)
    return dest


def tree_pids(root: int) -> list[int]:
    out, todo = [], [root]
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu(root: int) -> float:
    """CPU seconds of a process tree, reaped children included (cutime/cstime)."""
    total = 0
    for pid in tree_pids(root):
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    return total / HZ


def tree_rss_peak(root: int) -> int:
    peak = 0
    for pid in tree_pids(root):
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) * 1024
        except OSError:
            pass
    return peak


def run_loadgen(anchor: Path, port: int, count: int, conc: int, *, xclient: bool, max_seconds: float,
                label: str) -> dict[str, object]:
    cmd = [PY, str(anchor / "loadgen.py"), "--port", str(port), "-n", str(count), "-c", str(conc),
           "--corpus", str(anchor / "corpus"), "--max-seconds", str(max_seconds), "--label", label]
    if xclient:
        cmd.append("--xclient")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=max_seconds + 300)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class Ours:
    """A deployment of ours for the bench corpus: domain bench.example.net, its users, XCLIENT from loopback."""

    def __init__(self, profile: str, workers: int, port: int, dns_port: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"mb-bench-{profile}-", dir=WORK))
        self.profile, self.workers, self.port, self.dns_port = profile, workers, port, dns_port
        self.proc: subprocess.Popen[bytes] | None = None

    def init(self, anchor: Path) -> None:
        sys.path.insert(0, str(REPO / "src"))
        from mailbastion.testing.deployment import _set_toml

        subprocess.run([PY, "-m", "mailbastion", "init", "--dir", str(self.root), "--domain", "bench.example.net"],
                       check=True, capture_output=True)
        cfg = self.root / "mailbastion.toml"
        t = cfg.read_text()
        sets = {("server", "workers"): str(self.workers), ("server", "log_level"): '"warning"',
                ("smtp", "listen"): f'["127.0.0.1:{self.port}"]', ("smtp", "xclient_hosts"): '["127.0.0.1"]',
                ("smtp", "max_connections_per_client"): "1000",
                ("lmtp", "listen"): f'"127.0.0.1:{self.port + 1}"',
                ("dns", "nameservers"): '["127.0.0.1"]', ("dns", "port"): str(self.dns_port),
                ("antivirus.clamav", "enabled"): "false",
        ("antivirus", "stale_policy"): '"alarm_only"', ("spool", "scan_interval_seconds"): "0.2"}
        if self.profile == "path":
            # The checks of the message-path issue (relay, recipient, HELO, headers) plus the anti-virus
            # stage, which cannot be switched off (every message is scanned): YARA and the attachment
            # policy here, ClamAV being off for want of signatures. More work than Postfix's config b.
            sets.update({("auth", "enabled"): "false", ("spam", "enabled"): "false"})
        else:  # every message comes from one simulated client: lift the flood limits
            sets.update({("spam.ratelimit", "per_client"): "100000000", ("spam.ratelimit", "per_sender"): "100000000"})
        for (section, key), value in sets.items():
            t = _set_toml(t, section, key, value)
        cfg.write_text(t)
        from mailbastion.config import load_settings
        from mailbastion.directory import Directory

        d = Directory.from_settings(load_settings(cfg))
        manifest = json.loads((anchor / "corpus" / "manifest.json").read_text())
        for rcpt in sorted({r for m in manifest["messages"] for r in m["rcpt"]}):
            d.add_account(rcpt, None, by="bench", reason="benchmark recipients")

    def start(self) -> int:
        self.proc = subprocess.Popen([PY, "-m", "mailbastion", "serve", "-c", str(self.root / "mailbastion.toml")],
                                     stdout=open(self.root / "serve.log", "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        sys.path.insert(0, str(REPO / "src"))
        from mailbastion.testing.deployment import wait_port

        wait_port(self.port, 60, self.proc)
        time.sleep(1.0)
        return self.proc.pid

    def queue_empty(self) -> bool:
        spool = self.root / "spool"
        return not any((spool / s).exists() and any((spool / s).iterdir()) for s in ("incoming", "active", "deferred"))

    def delivered(self) -> int:
        return sum(1 for _ in (self.root / "mail").glob("*/*/new/*"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)


def bench_ours(anchor: Path, profile: str, conc_list: list[int], args: argparse.Namespace, dns_port: int) -> list[dict]:
    rows = []
    ours = Ours(profile, args.workers, args.port, dns_port)
    ours.init(anchor)
    pid = ours.start()
    try:
        run_loadgen(anchor, args.port, 200, 8, xclient=True, max_seconds=30, label="warmup")
        while not ours.queue_empty():
            time.sleep(0.1)
        for conc in conc_list:
            before_files, cpu0 = ours.delivered(), tree_cpu(pid)
            t0 = time.monotonic()
            res = run_loadgen(anchor, args.port, args.count, conc, xclient=True, max_seconds=args.max_seconds,
                              label=f"ours-{profile}")
            deadline = time.monotonic() + 300
            while not ours.queue_empty() and time.monotonic() < deadline:
                time.sleep(0.05)
            e2e = time.monotonic() - t0
            cpu = tree_cpu(pid) - cpu0
            accepted = int(res.get("accepted", 0))  # type: ignore[arg-type]
            rows.append(_row(f"mailbastion ({profile}, {args.workers} acceptors)", conc, res, cpu, e2e,
                             tree_rss_peak(pid), delivered=ours.delivered() - before_files, accepted=accepted))
    finally:
        ours.stop()
    return rows


def bench_sink(anchor: Path, conc_list: list[int], args: argparse.Namespace) -> list[dict]:
    """aiosmtpd's bare Sink handler: the floor of an aiosmtpd-based server (no XCLIENT: it has none).
    A comparison row only: aiosmtpd is the `bench` extra (`pip install -e .[bench]`), not a dependency."""
    import importlib.util

    if importlib.util.find_spec("aiosmtpd") is None:
        print("aiosmtpd Sink: skipped (install the `bench` extra for this comparison row)", file=sys.stderr)
        return []
    code = ("import asyncio,sys\nfrom aiosmtpd.controller import Controller\nfrom aiosmtpd.handlers import Sink\n"
            f"c=Controller(Sink(),hostname='127.0.0.1',port={args.port + 2});c.start()\n"
            "import signal;signal.sigwait({signal.SIGTERM})\n")
    proc = subprocess.Popen([PY, "-c", code], start_new_session=True)
    rows = []
    try:
        sys.path.insert(0, str(REPO / "src"))
        from mailbastion.testing.deployment import wait_port

        wait_port(args.port + 2, 30, proc)
        for conc in conc_list:
            cpu0, t0 = tree_cpu(proc.pid), time.monotonic()
            res = run_loadgen(anchor, args.port + 2, args.count, conc, xclient=False, max_seconds=args.max_seconds,
                              label="sink")
            rows.append(_row("aiosmtpd Sink", conc, res, tree_cpu(proc.pid) - cpu0, time.monotonic() - t0,
                             tree_rss_peak(proc.pid)))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    return rows


def bench_postfix(anchor: Path, conc_list: list[int], args: argparse.Namespace) -> list[dict]:
    """Postfix relaying to an LMTP sink (the anchors' config b), measured by the anchors' own runner."""
    if os.geteuid() != 0:
        print("postfix: skipped (needs root for the Debian packages)", file=sys.stderr)
        return []
    out = WORK / f"anchors-{int(time.time())}.json"
    subprocess.run(["bash", str(anchor / "anchors" / "run.sh"), "--reps", "1", "--configs", "b", "--no-scan",
                    "--no-smtp-source", "--count", str(args.count), "--max-seconds", str(args.max_seconds),
                    "--concurrency", ",".join(map(str, conc_list)), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    rows = []
    for cell in data.get("cells", []):
        if cell.get("config") != "b":
            continue
        m = cell["median"]
        rows.append({"server": "Postfix → LMTP sink", "c": cell.get("concurrency"),
                     "msg_s": m.get("msgs_per_s"), "e2e_s": m.get("e2e_msgs_per_s"),
                     "p50_ms": m.get("p50_ms"), "p99_ms": m.get("p99_ms"),
                     "cpu_ms_msg": m.get("stack_cpu_ms_per_msg"), "rss_mb": None,
                     "errors": sum(int(r.get("errors", 0)) for r in cell.get("runs", []))})
    return rows


def _row(server: str, conc: int, res: dict, cpu: float, e2e_s: float, rss: int, *, delivered: int | None = None,
         accepted: int | None = None) -> dict[str, object]:
    decided = int(res.get("accepted", 0)) + int(res.get("rejected", 0)) + int(res.get("tempfailed", 0))
    return {
        "server": server, "c": conc, "msg_s": res.get("msgs_per_s"),
        "e2e_s": round(decided / e2e_s, 1) if e2e_s and delivered is not None else None,
        "p50_ms": (res.get("lat_ms") or {}).get("p50"), "p99_ms": (res.get("lat_ms") or {}).get("p99"),
        "cpu_ms_msg": round(cpu / decided * 1000, 2) if decided else None,
        "rss_mb": round(rss / 2**20), "accepted": res.get("accepted"), "rejected": res.get("rejected"),
        "tempfailed": res.get("tempfailed"), "errors": res.get("errors"), "delivered": delivered,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--max-seconds", type=float, default=8.0, help="stop taking new messages after this (as anchors)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--port", type=int, default=12525)
    ap.add_argument("--profile", choices=["path", "full"], default="path",
                    help="path: message-path checks + anti-virus (YARA, attachments); full: every filter on")
    ap.add_argument("--postfix", action="store_true", help="also run Postfix (anchors' config b) in this run")
    ap.add_argument("--no-sink", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    anchor = prepare_anchor_copy()
    conc_list = [int(c) for c in args.concurrency.split(",")]
    sys.path.insert(0, str(REPO / "src"))
    from mailbastion.testing.dns_server import DnsTestServer

    rows: list[dict] = []
    with DnsTestServer() as dns:
        for line in (anchor / "corpus" / "dns-local-data.conf").read_text().splitlines():
            line = line.strip()
            if line.startswith("local-data:"):
                rr = line.split(":", 1)[1].strip()[1:-1].split(None, 4)
                value = rr[4]
                if rr[3] == "TXT":
                    value = "".join(part for part in value.split('"')[1::2])
                dns.add(rr[0].rstrip("."), rr[3], value)
        rows += bench_ours(anchor, args.profile, conc_list, args, dns.port)
    if not args.no_sink:
        rows += bench_sink(anchor, conc_list, args)
    if args.postfix:
        rows += bench_postfix(anchor, conc_list, args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"message-path-{stamp}.json").write_text(json.dumps(rows, indent=1))
    cols = ["server", "c", "msg_s", "e2e_s", "p50_ms", "p99_ms", "cpu_ms_msg", "rss_mb", "errors", "delivered"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))


if __name__ == "__main__":
    main()
