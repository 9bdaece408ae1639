"""IMAP logins through our password path next to Dovecot's own passwd-file, and FETCH of 1,000 messages.

    sudo .venv/bin/python bench/imap_bench.py [--accounts 20] [--logins 200] [--concurrency 4] [--messages 1000]

One run, one machine, two Dovecot instances with the same configuration (TLS, mail location, quota, ...)
except the password database:

  ours          passdb lua → our auth socket → LoginGuard (throttle, state, app passwords, audit of lockouts)
                → argon2-cffi verify of the directory's hash (SQLite) → answer with the userdb fields
  passwd-file   Dovecot alone: the same accounts with the same {ARGON2ID} hashes in a passwd-file

A login is: TCP connect, TLS handshake (implicit TLS), LOGIN, LOGOUT, from `--concurrency` client threads
over `--accounts` accounts. Figures: logins per second and the p50/p99 latency of connect → LOGIN answered.
The argon2 verification (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, 3 passes, 4 lanes) is most of
each login's cost on both sides; the difference is our path.

FETCH: `--messages` messages of ~4 KiB written by our MDA's Maildir code into one mailbox, then
SELECT + `UID FETCH 1:* (BODY.PEEK[])` once cold (Dovecot builds its index) and once warm. Needs root (Dovecot's
mail user) and Debian's Dovecot (`make run` or `make test` install it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import imaplib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "imap"))

from imap_kit import PASSWORD, ImapDeployment, free_port

from mailbastion.core.address import parse_address
from mailbastion.directory.models import Account


def passwd_file_instance(d: ImapDeployment, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """A second Dovecot: our rendered configuration with a passwd-file passdb of the same hashes."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    assert d.service is not None and d.service.mail_user is not None
    user = d.service.mail_user
    base = d.root / "bench-passwd-file"
    (base / "run").mkdir(parents=True, exist_ok=True)
    (base / "state").mkdir(exist_ok=True)
    os.chmod(base, 0o755)
    lines = []
    with Session(d.directory.engine) as s:
        for acc in s.scalars(select(Account)):
            home = d.store.mailbox_dir(parse_address(acc.address))
            lines.append(f"{acc.address}:{{ARGON2ID}}{acc.password_hash}:{user.uid}:{user.gid}::{home}::")
    passwd = base / "passwd"
    passwd.write_text("\n".join(lines) + "\n")
    os.chmod(passwd, 0o640)
    os.chown(passwd, 0, _gid("dovecot"))
    conf = d.service.layout.config.read_text()
    start, end = conf.index("passdb {"), conf.index("# Mailboxes:")
    conf = (conf[:start] + f"passdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\nuserdb {{\n"
            f"  driver = passwd-file\n  args = {passwd}\n}}\n\n" + conf[end:])
    conf = conf.replace(f"base_dir = {d.service.layout.base_dir}", f"base_dir = {base / 'run'}")
    conf = conf.replace(f"state_dir = {d.service.layout.state_dir}", f"state_dir = {base / 'state'}")
    conf = conf.replace("instance_name = ", "instance_name = bench-")
    head, _, tail = conf.partition("service imap-login {")
    listeners_end = tail.index("\n}\n")
    tail = (f"\n  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n    ssl = yes\n  }}"
            + tail[listeners_end:])
    conf = head + "service imap-login {" + tail
    conf = conf.replace("  imapsieve_mailbox", "  #imapsieve_mailbox")
    path = base / "dovecot.conf"
    path.write_text(conf)
    proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=d.tls_context(), timeout=5).logout()
            return proc, path
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the passwd-file Dovecot did not start")


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


def logins(d: ImapDeployment, port: int, accounts: list[str], total: int, concurrency: int) -> tuple[float, list[float]]:
    ctx = d.tls_context()

    def one(i: int) -> float:
        started = time.perf_counter()
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=120)
        m.login(accounts[i % len(accounts)], PASSWORD)
        latency = time.perf_counter() - started
        m.logout()
        return latency

    for i in range(min(concurrency, total)):  # warm-up: processes, Lua, connections to our socket
        one(i)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(total)))
    return total / (time.perf_counter() - started), latencies


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fetch(d: ImapDeployment, address: str, count: int) -> tuple[float, float, int]:
    body = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.\n" * 44)
    for i in range(count):
        d.deliver(address, b"From: sender@outside.example\nTo: " + address.encode() + b"\nSubject: message "
                  + str(i).encode() + b"\nMessage-ID: <bench-" + str(i).encode() + b"@outside.example>\n\n" + body)
    timings, size = [], 0
    for _ in range(2):  # cold (Dovecot indexes the new mail), then warm
        m = imaplib.IMAP4_SSL("127.0.0.1", d.tls_port, ssl_context=d.tls_context(), timeout=600)
        m.login(address, PASSWORD)
        started = time.perf_counter()
        m.select("INBOX", readonly=True)  # cold: Dovecot reads new/ and builds its index here
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
        timings.append(time.perf_counter() - started)
        assert typ == "OK"
        size = sum(len(part[1]) for part in data if isinstance(part, tuple))
        got = sum(1 for part in data if isinstance(part, tuple))
        assert got == count, (got, count)
        m.logout()
    return timings[0], timings[1], size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    with ImapDeployment.create(settings={("login", "max_failures_per_client"): "100000"}) as d:
        accounts = [f"user{i}@example.test" for i in range(args.accounts)]
        for address in accounts:
            d.add_account(address)
        port = free_port()
        proc, _ = passwd_file_instance(d, port)
        try:
            print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.logins} logins, "
                  f"{args.concurrency} clients, {len(accounts)} accounts, implicit TLS 1.3, argon2id (64 MiB, t=3, p=4)")
            print(f"{'passdb':14} {'logins/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
            for name, target in (("ours", d.tls_port), ("passwd-file", port), ("ours", d.tls_port),
                                 ("passwd-file", port)):
                rate, lat = logins(d, target, accounts, args.logins, args.concurrency)
                print(f"{name:14} {rate:9.1f} {p(lat, 0.5) * 1000:8.1f} {p(lat, 0.99) * 1000:8.1f} "
                      f"{statistics.mean(lat) * 1000:8.1f}")
        finally:
            proc.terminate()
            proc.wait(30)
        cold, warm, size = fetch(d, accounts[0], args.messages)
        print(f"SELECT + FETCH {args.messages} messages ({size / 1e6:.1f} MB, BODY.PEEK[]): cold {cold:.2f}s "
              f"({args.messages / cold:.0f} msg/s), warm {warm:.2f}s ({args.messages / warm:.0f} msg/s)")


if __name__ == "__main__":
    main()
