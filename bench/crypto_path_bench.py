#!/usr/bin/env python3
"""End-to-end outbound throughput with the encryption policy on (issue 15's last figure): real SMTP submission
sessions (implicit TLS, AUTH PLAIN once per connection) → submission's encryption policy
(submission/protection.py: classify, look up the key, S/MIME or OpenPGP encrypt, DKIM-sign the result) →
relay hop to the gateway → spool with fsync → SMTP client with verified TLS + REQUIRETLS → a remote MX sink
found through the loopback DNS (MTA-STS served over HTTPS on a loopback address, as RFC 8689 needs).
Next to it, in the same run: the same messages with the policy off, and `openssl cms -encrypt` / `gpg
--encrypt` run once per message on the same bytes. A figure, not a test; it asserts only that each row did
what it is named for (encrypted at the sink, or in clear).

    PYTHONPATH=src .venv/bin/python bench/crypto_path_bench.py                    # 200 messages of 5 KB, c = 4
    PYTHONPATH=src .venv/bin/python bench/crypto_path_bench.py --count 500 --size 102400 --concurrency 8

Rows (one `mailbastion serve`, all-in-one, as a child process; DNS, the sink, the MTA-STS server and the
clients run in this process, so their CPU is not counted):
  policy on,  S/MIME      "[confidential]" messages to a recipient whose certificate we hold (RSA-3072)
  policy on,  OpenPGP     the same to a recipient whose OpenPGP key we hold (cv25519, pysequoia)
  policy on,  clear       the same bytes without the tag: classified, not confidential, sent as they are
  policy off              `[encryption] enabled = false` (the server restarted): the tagged messages in clear
  openssl / gpg           one child process per message, `--concurrency` at a time (their start-up included)

Columns: accepted/s (submission's 250s), end-to-end/s (until the sink has every message), and CPU ms per
message of the server's process tree (utime+stime from /proc, reaped children included) or of the tools'
children (getrusage RUSAGE_CHILDREN). The machine may be shared: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "submission"))
sys.path.insert(0, str(REPO / "tests" / "crypto"))

import aiosmtplib
from crypto_testkit import SmimeTestCa
from message_path import tree_cpu
from submission_world import ALICE, PASSWORD, SinkThread, publish_dkim, remote_mx

from mailbastion.crypto import openpgp
from mailbastion.crypto.mime_wrap import inner_entity
from mailbastion.testing.certificates import CertAuthority
from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer

RESULTS = REPO / "bench" / "results"
BOB, CAROL = "bob@remote.test", "carol@remote.test"  # S/MIME certificate / OpenPGP key held for them
STS_IP = "127.0.0.27"  # the MTA-STS policy host (port 443); not the flow test's 127.0.0.7, which may run meanwhile


def sts_server(cert: Path, key: Path) -> http.server.ThreadingHTTPServer:
    """remote.test's MTA-STS policy (mode enforce) over HTTPS on STS_IP:443: REQUIRETLS needs it (RFC 8689)."""
    policy = b"version: STSv1\r\nmode: enforce\r\nmx: mx.remote.test\r\nmax_age: 86400\r\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/.well-known/mta-sts.txt" else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(policy)))
            self.end_headers()
            self.wfile.write(policy)

    httpd = http.server.ThreadingHTTPServer((STS_IP, 443), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def make_message(i: int, to: str, size: int, tag: bool) -> bytes:
    subject = ("[confidential] " if tag else "") + f"figures {i}"
    head = (f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: <cpb.{i}.{time.time_ns()}@example.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    line = f"Line of message {i}: the quarter's figures 0123456789, nothing else.\r\n"
    return (head + line * max(1, (size - len(head)) // len(line))).encode()


async def _client(port: int, ctx: ssl.SSLContext, batch: list[tuple[str, bytes]]) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=True, tls_context=ctx, timeout=300)
    await smtp.connect()
    await smtp.login(ALICE, PASSWORD)
    for rcpt, raw in batch:
        await smtp.sendmail(ALICE, [rcpt], raw)
    await smtp.quit()


async def submit_all(port: int, ctx: ssl.SSLContext, msgs: list[tuple[str, bytes]], concurrency: int,
                     per_connection: int) -> None:
    queue: asyncio.Queue[list[tuple[str, bytes]]] = asyncio.Queue()
    for s in range(0, len(msgs), per_connection):
        queue.put_nowait(msgs[s:s + per_connection])

    async def worker() -> None:
        while not queue.empty():
            await _client(port, ctx, queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def wait_for(condition: Any, timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the sink did not get every message")
        time.sleep(0.05)


def through_submission(d: Deployment, sink: Any, ctx: ssl.SSLContext, msgs: list[tuple[str, bytes]],
                       args: argparse.Namespace, expect: bytes | None) -> dict[str, float]:
    """Submit `msgs`, wait until the sink has them all; check each arrived as `expect` says (a content type
    that must be there, or None: in clear, the body readable)."""
    assert d.proc is not None
    before, cpu0, t0 = len(sink.received), tree_cpu(d.proc.pid), time.perf_counter()
    asyncio.run(submit_all(d.submissions_port, ctx, msgs, args.concurrency, args.per_connection))
    accepted = time.perf_counter() - t0
    wait_for(lambda: len(sink.received) >= before + len(msgs))
    total, cpu = time.perf_counter() - t0, tree_cpu(d.proc.pid) - cpu0
    got = list(sink.received)[before:]
    for m in got:
        content = m.content.lower()
        if expect is None:
            assert b"the quarter's figures" in content, "expected in clear"
        else:
            assert expect in content and b"the quarter's figures" not in content, "expected encrypted"
    n = len(msgs)
    return {"accepted_per_s": n / accepted, "end_to_end_per_s": n / total, "cpu_ms_per_msg": 1000 * cpu / n,
            "bytes_at_sink": sum(len(m.content) for m in got) / n}


def through_tool(cmd: list[str], inputs: list[bytes], concurrency: int, env: dict[str, str] | None = None
                 ) -> dict[str, float]:
    """One child per message, `concurrency` at a time; messages/s and the children's CPU per message."""
    def one(data: bytes) -> int:
        return len(subprocess.run(cmd, input=data, capture_output=True, check=True, env=env).stdout)

    one(inputs[0])  # warm-up (caches, gpg's keyring files)
    ru0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        sizes = list(pool.map(one, inputs))
    wall, ru1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    n = len(inputs)
    return {"accepted_per_s": n / wall, "end_to_end_per_s": n / wall, "cpu_ms_per_msg": 1000 * cpu / n,
            "bytes_at_sink": sum(sizes) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200, help="messages per row")
    ap.add_argument("--size", type=int, default=5 * 1024, help="message size in bytes")
    ap.add_argument("--concurrency", type=int, default=4, help="client connections (and tool processes) at once")
    ap.add_argument("--per-connection", type=int, default=10)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crypto-path-bench-") as tmp, DnsTestServer() as dns, \
            SinkThread() as sinks:
        root = Path(tmp)
        port = free_port()
        sink = remote_mx(root, dns, sinks, port)
        web_ca = CertAuthority.create(root / "web-ca", "Remote web CA")
        web = web_ca.issue(root / "web", ["mta-sts.remote.test"])
        trusted = root / "trusted.pem"
        trusted.write_bytes(sink.ca_path.read_bytes() + web_ca.cert_path.read_bytes())  # type: ignore[attr-defined]
        httpd = sts_server(web.chain_path, web.key_path)
        dns.add("_mta-sts.remote.test", "TXT", "v=STSv1; id=20261202T1")
        dns.add("mta-sts.remote.test", "A", STS_IP)
        bob = SmimeTestCa.create(root / "bob-ca").issue(root / "bob", BOB)
        carol_pub, _ = openpgp.generate_key(CAROL, days=30)
        (root / "carol.asc").write_bytes(carol_pub)
        big = str(100 * args.count)
        d = Deployment(root / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("delivery", "remote_port"): str(port), ("outbound", "ca_file"): f'"{trusted}"',
            ("server", "log_level"): '"warning"',
            ("submission.limits", "messages_per_hour"): big, ("submission.limits", "messages_per_day"): big,
            ("submission.limits", "recipients_per_hour"): big, ("submission.limits", "recipients_per_day"): big,
            ("submission.hijack", "fanout_recipients"): "1000"})
        d.init()
        d.mb("account", "add", ALICE, "--password-stdin", input=f"{PASSWORD}\n")
        d.mb("keys", "import", BOB, str(bob.cert_path))
        d.mb("keys", "import", CAROL, str(root / "carol.asc"))
        signing = publish_dkim(d, dns)
        ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
        ctx.check_hostname = False
        n, size = args.count, args.size
        smime_msgs = [(BOB, make_message(i, BOB, size, True)) for i in range(n)]
        pgp_msgs = [(CAROL, make_message(i, CAROL, size, True)) for i in range(n)]
        clear_msgs = [(BOB, make_message(i, BOB, size, False)) for i in range(n)]
        rows: list[tuple[str, dict[str, float]]] = []
        home = tempfile.mkdtemp(prefix="mbgp-")
        try:
            d.start()
            warm = [(BOB, make_message(i, BOB, size, True)) for i in range(10)]
            through_submission(d, sink, ctx, warm, args, b"pkcs7-mime")  # models, keys, sessions, MTA-STS cache
            through_submission(d, sink, ctx, [(CAROL, make_message(0, CAROL, size, True))], args, b"pgp-encrypted")
            rows.append(("policy on, S/MIME (submission → sink)", through_submission(d, sink, ctx, smime_msgs, args,
                                                                                  b"application/pkcs7-mime")))
            rows.append(("policy on, OpenPGP (submission → sink)", through_submission(d, sink, ctx, pgp_msgs, args,
                                                                                   b"application/pgp-encrypted")))
            rows.append(("policy on, not confidential (clear)", through_submission(d, sink, ctx, clear_msgs, args,
                                                                                None)))
            d.stop()
            d.set("encryption", "enabled", "false")
            d.start()
            through_submission(d, sink, ctx, warm, args, None)
            rows.append(("policy off, tagged messages (clear)", through_submission(d, sink, ctx, smime_msgs, args,
                                                                                None)))
            d.stop()
            os.chmod(home, 0o700)
            env = {**os.environ, "GNUPGHOME": home}
            rows.append(("openssl cms -encrypt -aes256 (RSA-3072)", through_tool(
                ["openssl", "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", str(bob.cert_path)],
                [inner_entity(raw) for _, raw in smime_msgs], args.concurrency)))
            rows.append(("gpg --encrypt --recipient-file (cv25519)", through_tool(
                ["gpg", "--batch", "--quiet", "--armor", "--trust-model", "always", "--encrypt", "--recipient-file",
                 str(root / "carol.asc")], [inner_entity(raw) for _, raw in pgp_msgs], args.concurrency, env)))
        finally:
            d.stop()
            httpd.shutdown()
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": home},
                           capture_output=True, check=False)
        print(f"{n} messages of {size} bytes per row, concurrency {args.concurrency}, {args.per_connection} per "
              f"connection; DKIM {', '.join(signing) or 'off'}; ClamAV off; {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f} (a shared machine: other work runs meanwhile)")
        print(f"{'row':<42} {'accepted/s':>10} {'end-to-end/s':>13} {'CPU ms/msg':>11} {'bytes out':>10}")
        for name, r in rows:
            print(f"{name:<42} {r['accepted_per_s']:>10.1f} {r['end_to_end_per_s']:>13.1f} "
                  f"{r['cpu_ms_per_msg']:>11.2f} {r['bytes_at_sink']:>10.0f}")
            with open(RESULTS / "crypto_path.jsonl", "a") as out:
                out.write(json.dumps({"bench": "crypto_path", "row": name, "count": n, "size": size,
                                      "concurrency": args.concurrency, **r}) + "\n")


if __name__ == "__main__":
    main()
