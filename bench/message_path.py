#!/usr/bin/env python3
"""The message-path benchmark: client → gateway → spool (fsync) → queue manager → MDA → Maildir.

    .venv/bin/python bench/message_path.py                         # ours and aiosmtpd's Sink (`bench` extra), c = 1, 8, 32
    .venv/bin/python bench/message_path.py --postfix               # + Postfix relaying to an LMTP sink (root)
    .venv/bin/python bench/message_path.py --profile spine,path,full --postfix --concurrency 8,32    # issue 9's table

Profiles of ours (the same deployment, `mailbastion init` + these settings):
  spine   issue 9's "spine": `path` without its content checks (the anti-virus stage and the encrypted-mail
          check). The product refuses to run without anti-virus, so this is not a setting: the server
          starts with bench/spine/sitecustomize.py on its PYTHONPATH, which leaves those two features out of
          the pipeline (bench only). Compare with Postfix's config b, which has no content check either.
  path    the message path: relay, recipient, HELO and header checks, and the anti-virus stage without
          ClamAV (YARA, attachment policy; anti-virus cannot be switched off, so this is the least we run);
          sender authentication and spam off. Compare with Postfix's config b.
  full    every check: SPF/DKIM/DMARC/ARC, spam rules and classifier, look-alikes, YARA, attachment policy
          and ClamAV on the anchors' clamd and signature database (started with `--postfix`, or running),
          our verdict cache off; clamd's CPU is added to ours. Compare with Postfix + rspamd + ClamAV (d).

It drives every server with the same client, `loadgen.py` of `../shared/bench` (the one the anchor figures
come from: one message per session, PIPELINING, XCLIENT from 127.0.0.1 so that each session looks like
an outside host), over the corpus that `mkcorpus.py` makes there (~4.8 KB messages, one in ten with a
100 KiB attachment). It needs that folder; it says so when it is absent. Ours is the all-in-one as `init`
makes it: the queue manager hands local mail to the MDA running in the same process (`[lmtp] direct`);
`--link` delivers over the LMTP link instead (mutual TLS, the MDA in a process of its own), as before
direct delivery and as a split deployment's hop.

For each server and concurrency it prints messages/s (accepted by the server), end-to-end messages/s
(until the queue is empty and every message is in a Maildir), p50/p99 latency, the server's CPU per
message (utime+stime of its whole process tree from /proc, measured until the queue drained, the
steadiest figure on a shared machine) and its peak RSS. Nothing is hard-coded; a JSON line per cell
goes to bench/results/.

Deployments are removed at the end of a run, and a run waits until the previous one ended SETTLE_SECONDS ago
(`--no-settle` does not): file deletions make the next minutes' file creations dearer on ext4 without a
journal (settle() below), and a figure must not depend on what ran just before it.
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

    def __init__(self, profile: str, workers: int, port: int, dns_port: int, *, link: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"mb-bench-{profile}-", dir=WORK))
        self.profile, self.workers, self.port, self.dns_port = profile, workers, port, dns_port
        self.link = link  # over the LMTP link (lmtp.direct = false), not direct delivery
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
                ("lmtp", "direct"): "false" if self.link else "true",
                # every other listener beside the bench's port too: two benches (or a test deployment) at once
                # must not meet on init's defaults
                ("relay_in", "listen"): f'["127.0.0.1:{self.port + 3}"]',
                ("submission", "listen"): f'["127.0.0.1:{self.port + 4}"]',
                ("submission", "listen_tls"): f'["127.0.0.1:{self.port + 5}"]',
                ("dns", "nameservers"): '["127.0.0.1"]', ("dns", "port"): str(self.dns_port),
                ("antivirus.clamav", "enabled"): "false",
        ("antivirus", "stale_policy"): '"alarm_only"', ("spool", "scan_interval_seconds"): "0.2",
                # the message path only (Postfix's side has no IMAP or web either); and serve keeps root's
                # user: the bench's Python may live where the service user cannot read (a pyenv under /root)
                ("imap", "enabled"): "false", ("portal", "enabled"): "false", ("server", "user"): '"root"'}
        if self.profile in ("spine", "path"):
            # The checks of the message-path issue (relay, recipient, HELO, headers) and the anti-virus stage
            # without ClamAV (YARA and the attachment policy); `spine` leaves that stage out (start()).
            sets.update({("auth", "enabled"): "false", ("spam", "enabled"): "false"})
        else:  # every message comes from one simulated client: lift the flood limits
            sets.update({("spam.ratelimit", "per_client"): "100000000", ("spam.ratelimit", "per_sender"): "100000000",
                         ("antivirus.clamav", "enabled"): "true", ("antivirus.clamav", "address"): '"127.0.0.1:3311"',
                         ("antivirus.clamav", "undated_signatures"): '"newest_file"',
                         ("antivirus.clamav", "database_dir"): f'"{anchor / "anchors" / ".state" / "clamdb"}"',
                         ("antivirus", "stale_policy"): '"soft_reject"', ("antivirus", "cache_size"): "0"})
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
        env = dict(os.environ)
        if self.profile == "spine":  # the content checks left out (bench/spine/sitecustomize.py)
            env["MAILBASTION_BENCH_SPINE"] = "1"
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "bench" / "spine"), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen([PY, "-m", "mailbastion", "serve", "-c", str(self.root / "mailbastion.toml")],
                                     stdout=open(self.root / "serve.log", "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        sys.path.insert(0, str(REPO / "src"))
        from mailbastion.testing.deployment import wait_port

        try:
            wait_port(self.port, 120, self.proc)
            self._wait_serving(180)
        except BaseException:
            self.proc.kill()  # never leave a server holding the ports for the next run
            self.proc.wait()
            raise
        time.sleep(1.0)
        return self.proc.pid

    def _wait_serving(self, timeout: float) -> None:
        """Until `serve` says it is serving: every role started. The MX port opens before the roles that
        start after it (submission, ...) have loaded; their start-up CPU must not count as the first
        cell's CPU per message."""
        log, deadline = self.root / "serve.log", time.monotonic() + timeout
        while b"mailbastion serving" not in log.read_bytes():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"our server exited while starting:\n{log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"our server did not say it was serving within {timeout:g} s")
            time.sleep(0.1)

    def queue_empty(self) -> bool:
        spool = self.root / "spool"
        return not any((spool / s).exists() and any((spool / s).iterdir()) for s in ("incoming", "active", "deferred"))

    def delivered(self) -> int:
        return sum(1 for _ in (self.root / "mail").glob("*/*/new/*"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)


def anchor_pid(anchor: Path, name: str) -> int | None:
    try:
        pid = int((anchor / "anchors" / ".state" / "pids" / f"{name}.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def anchors_up(anchor: Path) -> None:
    subprocess.run(["bash", str(anchor / "anchors" / "up.sh")], check=True, stdout=subprocess.DEVNULL)


def anchors_down(anchor: Path) -> None:
    subprocess.run(["bash", str(anchor / "anchors" / "down.sh")], check=False, stdout=subprocess.DEVNULL)


def bench_ours(anchor: Path, profile: str, conc_list: list[int], args: argparse.Namespace, dns_port: int) -> list[dict]:
    rows = []
    ours = Ours(profile, args.workers, args.port, dns_port, link=args.link)
    ours.init(anchor)
    pid = ours.start()
    clamd = anchor_pid(anchor, "clamd") if profile == "full" else None

    def cpu() -> float:  # ours, plus the clamd we use (full profile): its work is ours
        return tree_cpu(pid) + (tree_cpu(clamd) if clamd else 0.0)

    try:
        run_loadgen(anchor, args.port, 200, 8, xclient=True, max_seconds=30, label="warmup")
        while not ours.queue_empty():
            if ours.proc is not None and ours.proc.poll() is not None:
                log = (ours.root / "serve.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"our server exited during the warm-up:\n{log}")
            time.sleep(0.1)
        for conc in conc_list:
            before_files, cpu0 = ours.delivered(), cpu()
            t0 = time.monotonic()
            res = run_loadgen(anchor, args.port, args.count, conc, xclient=True, max_seconds=args.max_seconds,
                              label=f"ours-{profile}")
            deadline = time.monotonic() + 300
            while not ours.queue_empty() and time.monotonic() < deadline:
                time.sleep(0.05)
            e2e = time.monotonic() - t0
            used = cpu() - cpu0
            accepted = int(res.get("accepted", 0))  # type: ignore[arg-type]
            rows.append(_row(f"mailbastion ({profile}, {args.workers} acceptors{', LMTP link' if args.link else ''})",
                             conc, res, used, e2e,
                             tree_rss_peak(pid), delivered=ours.delivered() - before_files, accepted=accepted))
    finally:
        ours.stop()
    if not args.keep:  # measured: its spool and Maildirs are of no more use (kept above when a run raised)
        REMOVE_AT_END.append(ours.root)  # not now: see settle()
    return rows


# Deleting files is not free for what comes after it. On ext4 without a journal (this bench's VM: its root file
# system has none), allocating an inode skips every inode of the group freed in the last 60-300 s
# (`recently_deleted` in fs/ext4/ialloc.c), reading the inode table for each: after the ~4,500 files of a removed
# deployment, the next minutes' file creations cost ~0.4 ms more kernel CPU per message in our parent (perf and
# per-process /proc figures, docs/performance.md, twelfth session). Both sides create files per message, so a
# cell measured right after a mass deletion is dearer than one measured on a settled disk. Deployments are
# therefore removed at the end of a run, after every cell, and a run starts only once the previous run's
# deletions are SETTLE_SECONDS old.
SETTLE_SECONDS = 300.0
REMOVE_AT_END: list[Path] = []
_LAST_END = WORK / ".last-run-end"


def settle(skip: bool) -> None:
    try:
        age = time.time() - float(_LAST_END.read_text())
    except (OSError, ValueError):
        return
    if skip or age >= SETTLE_SECONDS:
        return
    wait = SETTLE_SECONDS - age
    print(f"message_path: waiting {wait:.0f} s: the last run deleted its files {age:.0f} s ago, and on ext4 without "
          "a journal new files cost more kernel CPU for a few minutes after a deletion (--no-settle skips this)",
          file=sys.stderr, flush=True)
    time.sleep(wait)


def finish_run() -> None:
    """Remove the run's deployments (after every cell) and note when, for the next run's settle(). A run that
    removed nothing (`--keep`, or no cell of ours finished) leaves the note as it was."""
    if not REMOVE_AT_END:
        return
    for root in REMOVE_AT_END:
        shutil.rmtree(root, ignore_errors=True)
    os.sync()
    _LAST_END.write_text(str(time.time()))


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


def bench_postfix(anchor: Path, conc_list: list[int], args: argparse.Namespace, *,
                  with_filters: bool = False) -> list[dict]:
    """Postfix relaying to an LMTP sink (the anchors' config b) and, `with_filters`, Postfix + rspamd +
    ClamAV (config d), measured by the anchors' own runner on the stack that is up."""
    if os.geteuid() != 0:
        print("postfix: skipped (needs root for the Debian packages)", file=sys.stderr)
        return []
    out = WORK / f"anchors-{int(time.time())}.json"
    configs = "b,d" if with_filters else "b"
    python = anchor / ".venv" / "bin" / "python"
    subprocess.run([str(python if python.exists() else PY), str(anchor / "anchors" / "run.py"), "--reps", "1",
                    "--configs", configs, "--no-scan", "--no-smtp-source", "--count", str(args.count),
                    "--max-seconds", str(args.max_seconds), "--concurrency", ",".join(map(str, conc_list)),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL, cwd=anchor)
    data = json.loads(out.read_text())
    names = {"b": "Postfix → LMTP sink", "d": "Postfix + rspamd + ClamAV → LMTP sink"}
    rows = []
    for cell in data.get("cells", []):
        if cell.get("config") not in names:
            continue
        m = cell["median"]
        rows.append({"server": names[cell["config"]], "c": cell.get("concurrency"),
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
    ap.add_argument("--profile", default="path",
                    help="comma-separated: spine (no content check: bench only, see the docstring), "
                         "path (no content check but YARA, attachment policy), "
                         "full (every check, ClamAV on the anchors' clamd)")
    ap.add_argument("--postfix", action="store_true",
                    help="also run Postfix (anchors' config b; d too with the full profile) in this run (root)")
    ap.add_argument("--no-sink", action="store_true")
    ap.add_argument("--link", action="store_true",
                    help="ours delivers over the LMTP link (lmtp.direct = false: mutual TLS, the MDA in its own "
                         "process), not directly in the queue manager's process (the all-in-one's default)")
    ap.add_argument("--no-settle", action="store_true",
                    help=f"start at once even when the previous run ended less than {SETTLE_SECONDS:g} s ago "
                         "(its deletions then weigh on this run's figures: see settle())")
    ap.add_argument("--keep", action="store_true",
                    help="keep each deployment of ours (bench/.work/mb-bench-*, ~120 MB with its Maildirs) after a "
                         "run; by default it is removed at the end of the run, after every cell (a failed run always "
                         "keeps it)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    anchor = prepare_anchor_copy()
    settle(args.no_settle)
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
        profiles = [p for p in args.profile.split(",") if p]
        unknown = set(profiles) - {"spine", "path", "full"}
        if unknown:
            sys.exit(f"message_path: unknown profile(s) {sorted(unknown)}")
        started_anchors = False
        if (args.postfix or "full" in profiles) and anchor_pid(anchor, "clamd") is None:
            if os.geteuid() != 0:
                sys.exit("message_path: the full profile and --postfix need the anchors' stack (root)")
            anchors_up(anchor)
            started_anchors = True
        try:
            for profile in profiles:
                rows += bench_ours(anchor, profile, conc_list, args, dns.port)
            if not args.no_sink:
                rows += bench_sink(anchor, conc_list, args)
            if args.postfix:
                rows += bench_postfix(anchor, conc_list, args, with_filters="full" in profiles)
        finally:
            finish_run()
            if started_anchors:
                anchors_down(anchor)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"message-path-{stamp}.json").write_text(json.dumps(rows, indent=1))
    cols = ["server", "c", "msg_s", "e2e_s", "p50_ms", "p99_ms", "cpu_ms_msg", "rss_mb", "errors", "delivered"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))


if __name__ == "__main__":
    main()
