"""A whole deployment for flow tests: `mailbastion init` into a folder, free loopback ports, a loopback
DNS server, and `mailbastion serve` as a real child process that a test can SIGTERM or SIGKILL.

    with DnsTestServer() as dns, Deployment(tmp_path, dns=dns) as d:
        d.start()
        d.send("bob@outside.example", ["postmaster@example.test"], raw_message)
        d.wait_delivered("postmaster@example.test", 1)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from mailbastion.config.toml_writer import dumps
from mailbastion.testing.dns_server import DnsTestServer

MB = [sys.executable, "-m", "mailbastion"]


_GIVEN: dict[int, None] = {}  # ports free_port() handed out lately, oldest first
_GIVEN_MAX = 4096


def free_port() -> int:
    """A TCP port free on 127.0.0.1 and on 127.0.0.2 (tests put remote MXes there on the deployment's
    delivery.remote_port): a port free on the first only may be held on the second by a sink of another
    test that is still running. Never one it handed out lately: a deployment asks for nine before its server
    binds any, and the kernel may offer a port it just offered again (a test's `serve` once failed binding
    its SMTP port because its portal or submission listener had been given the same one)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if port in _GIVEN:
                continue
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.2", port))
                except OSError:
                    continue
            _GIVEN[port] = None
            while len(_GIVEN) > _GIVEN_MAX:
                del _GIVEN[next(iter(_GIVEN))]
            return port


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> int | None:
    """Signal the process group of `proc`, wait; SIGKILL after `timeout`. Its exit status."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_serving(log: Path, since: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Wait until `serve` printed its "mailbastion serving" line after byte `since` of `log`: every role has
    started and the signal handlers are in place (a SIGUSR2 before then would end the process)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was serving")
        with contextlib.suppress(OSError), open(log, "rb") as fh:
            fh.seek(since)
            if b"mailbastion serving (" in fh.read():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"server not serving after {timeout}s (no 'mailbastion serving' line in {log})")
        time.sleep(0.1)


def wait_ready(port: int, log: Path, since: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Wait until `serve` is ready, not merely bound: it printed its "mailbastion serving" line (the MDA
    answers, the queue manager runs, listeners are up) after byte `since` of `log`, and the SMTP port
    greets with 220 (with acceptor processes the parent binds early; an acceptor must also accept)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready on {port}")
        with contextlib.suppress(OSError), open(log, "rb") as fh:
            fh.seek(since)
            if b"mailbastion serving (" in fh.read():
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"server not ready after {timeout}s (no 'mailbastion serving' line in {log})")
        time.sleep(0.1)
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.settimeout(max(1.0, min(30.0, deadline - time.monotonic())))
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before greeting on {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no SMTP greeting on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.1)


def _set_toml(text: str, section: str, key: str, value: str) -> str:
    """Set `key = value` (value in TOML syntax) in the dotted `section`: a parse and write round trip."""
    data = tomllib.loads(text)
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[key] = tomllib.loads(f"v = {value}")["v"]
    return dumps(data)


class Deployment:
    def __init__(self, root: Path, *, domain: str = "example.test", dns: DnsTestServer | None = None,
                 settings: dict[tuple[str, str], str] | None = None) -> None:
        self.root = root
        self.domain = domain
        self.dns = dns
        self.smtp_port = free_port()
        self.lmtp_port = free_port()
        self.relay_port = free_port()
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.portal_port = free_port()
        self.submission_port, self.submissions_port = free_port(), free_port()  # STARTTLS, implicit TLS
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "serve.log"
        self.extra = settings or {}
        self.postmaster_password = ""

    @property
    def config(self) -> Path:
        return self.root / "mailbastion.toml"

    def init(self) -> Deployment:
        out = self.mb("init", "--dir", str(self.root), "--domain", self.domain, config=False)
        m = re.search(r"password \(shown once, store it now\): (\S+)", out)
        self.postmaster_password = m.group(1) if m else ""
        text = self.config.read_text()
        text = _set_toml(text, "smtp", "listen", f'["127.0.0.1:{self.smtp_port}"]')
        text = _set_toml(text, "lmtp", "listen", f'"127.0.0.1:{self.lmtp_port}"')
        text = _set_toml(text, "relay_in", "listen", f'["127.0.0.1:{self.relay_port}"]')
        # IMAP (Dovecot) only where a test asks for it with settings={("imap", "enabled"): "true"}: it needs
        # Debian's Dovecot, root, and a folder its users can pass through (not pytest's 0700 tmp_path).
        text = _set_toml(text, "imap", "enabled", "false")
        text = _set_toml(text, "imap", "listen", f'["127.0.0.1:{self.imap_port}"]')
        text = _set_toml(text, "imap", "listen_tls", f'["127.0.0.1:{self.imaps_port}"]')
        text = _set_toml(text, "portal", "listen", f'"127.0.0.1:{self.portal_port}"')
        text = _set_toml(text, "submission", "listen", f'["127.0.0.1:{self.submission_port}"]')
        text = _set_toml(text, "submission", "listen_tls", f'["127.0.0.1:{self.submissions_port}"]')
        if self.dns is not None:
            text = _set_toml(text, "dns", "nameservers", f'["{self.dns.host}"]')
            text = _set_toml(text, "dns", "port", str(self.dns.port))
            text = _set_toml(text, "dns", "timeout", "2.0")
        text = _set_toml(text, "spool", "scan_interval_seconds", "0.2")
        # Test folders live below pytest's 0700 base, which the service user cannot reach: serve keeps the
        # test runner's user (a logged config.weakened). tests/split and tests/apps/test_privileges.py run
        # the server as the service user.
        text = _set_toml(text, "server", "user", '"root"')
        for (section, key), value in self.extra.items():
            text = _set_toml(text, section, key, value)
        self.config.write_text(text)
        return self

    def set(self, section: str, key: str, value: str) -> None:
        self.config.write_text(_set_toml(self.config.read_text(), section, key, value))

    def mb(self, *args: str, config: bool = True, input: str | None = None, check: bool = True) -> str:
        cmd = [*MB, *args] + (["-c", str(self.config)] if config else [])
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, input=input, timeout=120)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    def start(self, role: str = "all", timeout: float = 120.0) -> None:
        """Start `serve` and wait until it is ready (see wait_ready; the MDA role: its LMTP port listens).
        The generous bound only matters on a slow, busy machine: readiness is a condition, not a sleep."""
        self.proc = self._spawn(role, timeout)

    @contextlib.contextmanager
    def also_serving(self, role: str, timeout: float = 120.0) -> Iterator[subprocess.Popen[bytes]]:
        """A second `serve --role ROLE` from the same configuration, logging to the same file, for as long
        as the block runs (e.g. the gateway beside `start(role="internal")`: a split in two processes)."""
        proc = self._spawn(role, timeout)
        try:
            yield proc
        finally:
            _stop(proc, signal.SIGTERM, 60.0)

    def _spawn(self, role: str, timeout: float) -> subprocess.Popen[bytes]:
        since = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen([*MB, "serve", "-c", str(self.config), "--role", role],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if role in ("mda", "internal"):
                wait_port(self.lmtp_port, timeout, proc)
                wait_serving(self.log_path, since, timeout, proc)  # the portal starts after the MDA listens
            else:
                wait_ready(self.smtp_port, self.log_path, since, timeout, proc)
        except BaseException:
            _stop(proc, signal.SIGKILL, 10.0)
            raise
        return proc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        code = _stop(self.proc, sig, timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- mail --------------------------------------------------------------------------------------

    def smtp(self, *, tls: bool = False, helo: str = "mx.outside.example") -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname=helo, timeout=30)
        s.ehlo(helo)
        if tls:
            ctx = ssl.create_default_context(cafile=str(self.root / "tls" / "ca.crt"))
            ctx.check_hostname = False
            s.starttls(context=ctx)
            s.ehlo(helo)
        return s

    def send(self, sender: str, recipients: Iterable[str], message: bytes, **kw: Any) -> dict[str, Any]:
        with self.smtp(**kw) as s:
            return s.sendmail(sender, list(recipients), message)

    def maildir(self, address: str, folder: str = "") -> Path:
        local, domain = address.lower().split("@")
        base = self.root / "mail" / domain / local
        return base / f".{folder}" if folder else base

    def delivered(self, address: str, folder: str = "") -> list[bytes]:
        md = self.maildir(address, folder)
        files = sorted([*(md / "new").glob("*"), *(md / "cur").glob("*")],
                       key=lambda p: (p.stat().st_mtime_ns, p.name)) if md.exists() else []
        return [f.read_bytes() for f in files]

    def wait_delivered(self, address: str, count: int, *, folder: str = "", timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered(address, folder)
            if len(got) >= count:
                return got
            time.sleep(0.1)
        raise TimeoutError(f"{address}: {len(self.delivered(address, folder))} of {count} delivered\n{self.log()[-3000:]}")

    def spool_files(self) -> list[Path]:
        spool = self.root / "spool"
        return [p for p in spool.rglob("*") if p.is_file()] if spool.exists() else []

    def __enter__(self) -> Self:
        return self.init()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
