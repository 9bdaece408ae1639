"""A real validating resolver for tests: Debian's `unbound` on a loopback port, its only trust anchors the
test zones' keys, stub zones pointing at test servers, everything else forwarded to another test server.

    with SignedZoneServer([zone]) as auth, DnsTestServer() as plain, Unbound(
            tmp_path / "unbound", trust_anchors=[zone.trust_anchor],
            stubs={"dane.test": (auth.host, auth.port)}, forward=(plain.host, plain.port)) as resolver:
        DnssecResolver(resolver.host, resolver.port)      # AD set on what validates under the anchors

Names under a trust anchor are validated (bogus data: SERVFAIL); names under none are insecure (no AD),
whatever the upstream claims: unbound sets AD from its own validation only. Started as a child process
(`unbound -d`), stopped by its pid; waits until the resolver answers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query


def unbound_available() -> bool:
    return shutil.which("unbound") is not None or Path("/usr/sbin/unbound").exists()


def _free_udp_tcp_port(host: str) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class Unbound:
    def __init__(self, folder: Path, *, trust_anchors: list[str], stubs: dict[str, tuple[str, int]] | None = None,
                 forward: tuple[str, int] | None = None, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.host = host
        self.port = _free_udp_tcp_port(host)
        self.trust_anchors = trust_anchors
        self.stubs = stubs or {}
        self.forward = forward
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        lines = [
            "server:",
            f"  interface: {self.host}", f"  port: {self.port}", "  do-ip6: no", "  do-udp: yes", "  do-tcp: yes",
            '  username: ""', '  chroot: ""', f'  directory: "{self.folder}"',
            f'  pidfile: "{self.folder}/unbound.pid"', "  use-syslog: no", '  logfile: ""',
            "  verbosity: 1", "  val-log-level: 2", "  log-servfail: yes",
            "  access-control: 127.0.0.0/8 allow", "  do-not-query-localhost: no",
            '  module-config: "validator iterator"', "  qname-minimisation: no", "  harden-dnssec-stripped: yes",
            "  val-permissive-mode: no", "  aggressive-nsec: no", "  prefetch: no", "  num-threads: 1",
            "  so-reuseport: no", "  cache-max-ttl: 30", "  cache-max-negative-ttl: 5",
            '  target-fetch-policy: "0 0 0 0 0"', "  edns-buffer-size: 1232",
            *(f'  trust-anchor: "{a}"' for a in self.trust_anchors),
            # RFC 6761 names unbound answers NXDOMAIN itself by default: test zones live there.
            '  local-zone: "test." nodefault', '  local-zone: "invalid." nodefault',
        ]
        for name, (host, port) in self.stubs.items():
            lines += ["stub-zone:", f'  name: "{name}"', f"  stub-addr: {host}@{port}"]
        if self.forward is not None:
            lines += ["forward-zone:", '  name: "."', f"  forward-addr: {self.forward[0]}@{self.forward[1]}"]
        lines += ["remote-control:", "  control-enable: no", ""]
        return "\n".join(lines)

    def start(self, timeout: float = 30.0) -> Unbound:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "unbound.conf"
        conf.write_text(self.config(), encoding="utf-8")
        exe = shutil.which("unbound") or "/usr/sbin/unbound"
        check = subprocess.run([shutil.which("unbound-checkconf") or "/usr/sbin/unbound-checkconf", str(conf)],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {check.stdout}{check.stderr}")
        log = (self.folder / "unbound.log").open("wb")
        self.proc = subprocess.Popen([exe, "-d", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"unbound exited with {self.proc.returncode}: {self.log()}")
            try:
                dns.query.udp(dns.message.make_query("localhost.", "A"), self.host, timeout=0.5, port=self.port)
                return self
            except (OSError, dns.exception.Timeout):
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"unbound did not answer on {self.host}:{self.port} within {timeout}s: {self.log()}")

    def log(self) -> str:
        path = self.folder / "unbound.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> Unbound:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

__all__ = ["Unbound", "unbound_available"]
