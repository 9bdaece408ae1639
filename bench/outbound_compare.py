#!/usr/bin/env python3
"""Outbound mail, mailbastion next to Postfix, in one run (issue 10's figures). A figure, not a test.

    sudo PYTHONPATH=src .venv/bin/python bench/outbound_compare.py                 # 300 messages, c = 1, 8
    sudo PYTHONPATH=src .venv/bin/python bench/outbound_compare.py --count 500 --concurrency 1 8 16

Both stacks take the same traffic from the same client and deliver to the same remote MX sink (aiosmtplib
clients and an aiosmtpd sink in this process, so neither's CPU is counted):

  mailbastion  `mailbastion serve` (all-in-one): submission on implicit TLS (AUTH PLAIN, argon2id once per
               connection, sender binding, limits and hijack signs), DKIM signing rsa-sha256 + ed25519-sha256,
               the relay hop to the gateway over mutual TLS, the gateway's outbound checks (YARA, attachment
               policy, spam rules and classifier; ClamAV off: no clamd is started), spool with fsync, MX lookup
               through the loopback DNS, SMTP with opportunistic TLS to the sink.
  postfix      Debian's Postfix, a private instance under bench/.work/outbound-compare: smtpd on implicit TLS
               (smtpd_tls_wrappermode), Cyrus SASL PLAIN from a sasldb (a plain-text secret: no password hash
               is computed), reject_sender_login_mismatch, OpenDKIM as a milter signing rsa-sha256 with the
               same RSA key (Debian 12's OpenDKIM 2.11.0~beta2 cannot add an ed25519-sha256 signature next to
               it: one algorithm for every key; mailbastion signs both), queue with fsync, smtp client to the sink via relayhost
               (no DNS), opportunistic TLS. No content checks (Postfix has none of its own).

Per stack and concurrency: messages/s accepted (end of DATA → 250), end-to-end messages/s (until the sink
holds them all), p50/p99 submission latency, and the stack's CPU ms per message (utime+stime of its process
trees from /proc, reaped children included: mailbastion's `serve`; Postfix's master and OpenDKIM). Each
connection logs in once and sends `--per-connection` messages. Root only (Postfix, OpenDKIM run as their
users). The Postfix ports are free ports chosen at start (never 2424/2525); Postfix and OpenDKIM are stopped
by their own PIDs at the end, even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "submission"))

from message_path import tree_cpu
from submission_bench import run
from submission_world import ALICE, DOMAIN, PASSWORD, SinkThread, publish_dkim, remote_mx

from mailbastion.auth.keys import KeyStore
from mailbastion.testing.certificates import CertAuthority
from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer

WORK = REPO / "bench" / ".work" / "outbound-compare"
RESULTS = REPO / "bench" / "results"

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixStack:
    """Postfix + OpenDKIM for submission → smtp client, all state below `work`. `start()`, `stop()`."""

    def __init__(self, work: Path, *, sink: tuple[str, int], keys: KeyStore) -> None:
        self.work = work
        self.sink = sink
        self.keys = keys
        self.port = free_port()
        self.milter_port = free_port()
        self.conf = work / "conf"
        self.opendkim: subprocess.Popen[bytes] | None = None

    # -- configuration ----------------------------------------------------------------------------

    def _dkim_keys(self) -> list[tuple[str, Path]]:
        """(selector, key file) of our active RSA key (PKCS#1 PEM, as OpenDKIM reads it)."""
        out = []
        folder = self.work / "dkim"
        folder.mkdir(parents=True)
        uid = pwd.getpwnam("opendkim")
        for info in self.keys.active(DOMAIN):
            # Debian 12's OpenDKIM (2.11.0~beta2) signs with one algorithm for all keys (`SignatureAlgorithm`;
            # the per-key algorithm of OpenDKIM#269 came in 2026): it cannot add the ed25519 signature.
            if info.algorithm != "rsa-sha256":
                continue
            private = self.keys.private_key(DOMAIN, info.selector)
            path = folder / f"{info.selector}.key"
            path.write_bytes(private)
            os.chown(path, uid.pw_uid, uid.pw_gid)
            path.chmod(0o600)
            out.append((info.selector, path))
        os.chown(folder, uid.pw_uid, uid.pw_gid)
        return out

    def configure(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        for sub in ("conf/sasl", "queue", "data", "logs"):
            (self.work / sub).mkdir(parents=True)
        for p in (self.work, self.work.parent, self.work / "logs"):
            p.chmod(0o755)
        shutil.chown(self.work / "data", "postfix")
        ca = CertAuthority.create(self.work / "ca", "Postfix bench CA")
        cert = ca.issue(self.work / "tls", [f"mail.{DOMAIN}"])
        self.ca_path = ca.cert_path
        # Cyrus SASL from a sasldb: smtpd (user postfix) reads it.
        sasldb = self.work / "sasldb2"
        subprocess.run(["saslpasswd2", "-f", str(sasldb), "-c", "-p", "-u", DOMAIN, "alice"],
                       input=PASSWORD.encode(), check=True)
        shutil.chown(sasldb, "postfix")
        (self.conf / "sasl" / "smtpd.conf").write_text(
            f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {sasldb}\nmech_list: PLAIN LOGIN\n")
        (self.conf / "senders").write_text(f"{ALICE} {ALICE}\n")
        # OpenDKIM: every message of our domain signed with our RSA key.
        keys = self._dkim_keys()
        table = "".join(f"{sel}._domainkey.{DOMAIN} {DOMAIN}:{sel}:{path}\n" for sel, path in keys)
        signing = "".join(f"*@{DOMAIN} {sel}._domainkey.{DOMAIN}\n" for sel, _ in keys)
        (self.work / "dkim" / "keytable").write_text(table)
        (self.work / "dkim" / "signingtable").write_text(signing)
        (self.work / "opendkim.conf").write_text(
            f"Mode s\nSocket inet:{self.milter_port}@127.0.0.1\nKeyTable file:{self.work}/dkim/keytable\n"
            f"SigningTable refile:{self.work}/dkim/signingtable\nMultipleSignatures yes\n"
            "Canonicalization relaxed/relaxed\nOversignHeaders From\nUserID opendkim\nBackground no\n"
            "Syslog no\nLogWhy no\nUMask 007\n")
        host, port = self.sink
        (self.conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
config_directory = {self.conf}
queue_directory = {self.work}/queue
data_directory = {self.work}/data
maillog_file_prefixes = {self.work}/logs
maillog_file = {self.work}/logs/postfix-mail.log
myhostname = mail.{DOMAIN}
mydomain = {DOMAIN}
myorigin = $mydomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [{host}]:{port}
smtp_dns_support_level = disabled
smtp_tls_security_level = may
smtpd_tls_cert_file = {cert.chain_path}
smtpd_tls_key_file = {cert.key_path}
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {self.conf}/sasl
smtpd_sender_login_maps = texthash:{self.conf}/senders
smtpd_sender_restrictions = reject_sender_login_mismatch
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions =
smtpd_milters = inet:127.0.0.1:{self.milter_port}
non_smtpd_milters =
milter_default_action = tempfail
milter_protocol = 6
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP
""")
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=self.port))

    # -- run --------------------------------------------------------------------------------------

    def start(self) -> None:
        self.configure()
        with open(self.work / "logs" / "opendkim.log", "wb") as out:  # the child keeps its own descriptor
            self.opendkim = subprocess.Popen(["opendkim", "-f", "-x", str(self.work / "opendkim.conf")],
                                             stdout=out, stderr=subprocess.STDOUT)
        for cmd in ("check", "start"):
            done = subprocess.run(["script", "-qec", f"postfix -c {self.conf} {cmd}", "/dev/null"], check=False,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"postfix {cmd}: {done.stdout.strip()} {done.stderr.strip()}")
        for port in (self.milter_port, self.port):
            _wait(lambda p=port: _listening(p), f"port {port}")

    def master_pid(self) -> int:
        return int((self.work / "queue" / "pid" / "master.pid").read_text().split()[0])

    def cpu(self) -> float:
        assert self.opendkim is not None
        return tree_cpu(self.master_pid()) + tree_cpu(self.opendkim.pid)

    def stop(self) -> None:
        if (self.work / "queue" / "pid" / "master.pid").exists():
            subprocess.run(["postfix", "-c", str(self.conf), "stop"], check=False, capture_output=True)
        if self.opendkim is not None and self.opendkim.poll() is None:
            self.opendkim.terminate()
            try:
                self.opendkim.wait(20)
            except subprocess.TimeoutExpired:
                self.opendkim.kill()


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _wait(condition: Callable[[], object], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f}s")
        time.sleep(0.05)


def measure(label: str, port: int, ctx: ssl.SSLContext, sink_count: Callable[[], int], cpu: Callable[[], float],
            count: int, c: int, per_connection: int) -> dict[str, object]:
    before, cpu0, t0 = sink_count(), cpu(), time.perf_counter()
    lat = asyncio.run(run(port, ctx, count, c, per_connection))
    accepted = time.perf_counter() - t0
    _wait(lambda: sink_count() >= before + count, f"{label}: every message at the sink", timeout=900)
    total, used = time.perf_counter() - t0, cpu() - cpu0
    lat.sort()
    return {"bench": "outbound_compare", "stack": label, "concurrency": c, "count": count,
            "accepted_per_s": count / accepted, "end_to_end_per_s": count / total,
            "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
            "cpu_ms_per_msg": 1000 * used / count}


def context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    return ctx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 8])
    ap.add_argument("--per-connection", type=int, default=10)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("outbound_compare: run as root (Postfix and OpenDKIM run as their own users)")
    for tool in ("postfix", "opendkim", "saslpasswd2"):
        if shutil.which(tool) is None:
            sys.exit(f"outbound_compare: {tool} is missing: apt-get install postfix opendkim sasl2-bin "
                     "(make bench-outbound)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="outbound-compare-") as tmp, DnsTestServer() as dns, \
            SinkThread() as sinks:
        root = Path(tmp)
        sink_port = free_port()
        sink = remote_mx(root, dns, sinks, sink_port)
        big = str(10 * args.count * max(args.concurrency) * 2)
        d = Deployment(root / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("delivery", "remote_port"): str(sink_port), ("server", "log_level"): '"warning"',
            ("submission.limits", "messages_per_hour"): big, ("submission.limits", "messages_per_day"): big,
            ("submission.limits", "recipients_per_hour"): big, ("submission.limits", "recipients_per_day"): big,
            ("submission.hijack", "fanout_recipients"): "1000"})
        d.init()
        d.mb("account", "add", ALICE, "--password-stdin", input=f"{PASSWORD}\n")
        signing = publish_dkim(d, dns)
        postfix = PostfixStack(WORK, sink=("127.0.0.2", sink_port), keys=KeyStore(d.root / "dkim"))
        d.start()
        try:
            postfix.start()
            ours_ctx, pf_ctx = context(d.root / "tls" / "ca.crt"), context(postfix.ca_path)
            assert d.proc is not None
            pid = d.proc.pid
            n = len(sink.received)
            asyncio.run(run(d.submissions_port, ours_ctx, 20, 2, 10))  # warm-up: models, keys, sessions
            asyncio.run(run(postfix.port, pf_ctx, 20, 2, 10))
            _wait(lambda: len(sink.received) >= n + 40, "warm-up at the sink")
            sigs = [m.content.count(b"DKIM-Signature:") for m in sink.received[-40:]]
            print(f"submission → remote MX sink; mailbastion signs with {', '.join(signing)} (rsa + ed25519), "
                  f"OpenDKIM with the rsa one; DKIM signatures per warm-up message: {sorted(set(sigs))}; "
                  "ClamAV off")
            print(f"{'stack':<12} {'c':>3} {'accepted/s':>11} {'end-to-end/s':>13} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'CPU ms/msg':>11}")
            for c in args.concurrency:
                for label, port, ctx, cpu in (("mailbastion", d.submissions_port, ours_ctx, lambda: tree_cpu(pid)),
                                              ("postfix", postfix.port, pf_ctx, postfix.cpu)):
                    row = measure(label, port, ctx, lambda: len(sink.received), cpu, args.count, c,
                                  args.per_connection)
                    rows.append(row)
                    print(f"{label:<12} {c:>3} {row['accepted_per_s']:>11.1f} {row['end_to_end_per_s']:>13.1f} "
                          f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['cpu_ms_per_msg']:>11.2f}", flush=True)
        finally:
            postfix.stop()
            d.stop()
    with open(RESULTS / "outbound_compare.jsonl", "a") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
