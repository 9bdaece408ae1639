"""(A uniquely named module, not conftest, so test modules can import it.)

A whole deployment for submission flow tests: `mailbastion serve` (all-in-one) as a child process with its
submission listeners on free loopback ports, the loopback DNS server, and a remote MX (an aiosmtpd sink of
ours on 127.0.0.2, found through MX and A records) that plays "the Internet". DKIM keys made by `init` are
published in the loopback DNS and switched to active by `mailbastion dns check`, as an administrator would.

    world.submit(message, user=ALICE, password=PASSWORD, port="starttls")   # smtplib, real TLS
    world.wait_at_sink(lambda m: b"subject" in m.content)                    # what reached the remote MX
    world.dkim_verify(raw)                                                   # dkimpy against the loopback DNS
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from email.utils import formatdate
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import dkim
import dns.message
import dns.query
import dns.rdatatype

from mailbastion.auth.keys import KeyStore
from mailbastion.testing.certificates import CertAuthority
from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.mx_sink import MxSink, SinkMessage

T = TypeVar("T")
DOMAIN = "example.test"
ALICE = f"alice@{DOMAIN}"
PASSWORD = "Correct-Horse-Battery-9"


class SinkThread:
    """Remote MXes served by an event loop in a thread of the (synchronous) test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sinks", daemon=True)
        self.sinks: list[MxSink] = []

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        for sink in self.sinks:
            self.run(sink.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def message(subject: str, *, sender: str = ALICE, to: str = "bob@remote.test", body: str = "Hello Bob.\r\n",
            extra: str = "") -> bytes:
    return (f"From: Alice <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: <{time.time_ns()}.{abs(hash(subject))}@{DOMAIN}>\r\n{extra}\r\n{body}").encode()


def wait(condition: Callable[[], object], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


class World:
    def __init__(self, d: Deployment, dns: DnsTestServer, sink: MxSink) -> None:
        self.d, self.dns, self.sink = d, dns, sink

    # -- clients ----------------------------------------------------------------------------------

    def tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.d.root / "tls" / "ca.crt"))
        ctx.check_hostname = False
        return ctx

    def connect(self, port: str = "starttls", *, tls: bool = True) -> smtplib.SMTP:
        """A client of the STARTTLS port (after STARTTLS when `tls`) or of the implicit-TLS port."""
        if port == "implicit":
            s: smtplib.SMTP = smtplib.SMTP_SSL("127.0.0.1", self.d.submissions_port, context=self.tls_context(),
                                               timeout=60)
            s.ehlo("laptop.example.test")
            return s
        s = smtplib.SMTP("127.0.0.1", self.d.submission_port, timeout=60)
        s.ehlo("laptop.example.test")
        if tls:
            s.starttls(context=self.tls_context())
            s.ehlo("laptop.example.test")
        return s

    def submit(self, msg: bytes, rcpts: list[str] | None = None, *, user: str = ALICE, password: str = PASSWORD,
               sender: str = ALICE, port: str = "starttls") -> dict[str, Any]:
        with self.connect(port) as s:
            s.login(user, password)
            return s.sendmail(sender, rcpts or ["bob@remote.test"], msg)

    # -- what arrived -----------------------------------------------------------------------------

    def wait_at_sink(self, match: Callable[[SinkMessage], bool], what: str = "the message at the remote MX") -> SinkMessage:
        return wait(lambda: next((m for m in list(self.sink.received) if match(m)), None), what)  # type: ignore[no-any-return]

    def dkim_verify(self, raw: bytes) -> list[tuple[bytes, bool]]:
        """(algorithm, verified) of each DKIM-Signature, keys looked up in the loopback DNS."""

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
            q = dns.message.make_query(name.decode().rstrip("."), dns.rdatatype.TXT)
            r = dns.query.udp(q, self.dns.host, port=self.dns.port, timeout=5)
            for rrset in r.answer:
                for rd in rrset:
                    return b"".join(rd.strings)  # type: ignore[attr-defined,no-any-return]
            return b""

        out = []
        d = dkim.DKIM(raw)
        count = sum(1 for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
        for i in range(count):
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
            out.append((d.signature_fields.get(b"a", b""), bool(ok)))
        return out

    def log_has(self, needle: str) -> bool:
        return needle in self.d.log()


def publish_dkim(d: Deployment, dns: DnsTestServer) -> list[str]:
    """Publish every key of our domain in the loopback DNS, then let `dns check` switch signing to them."""
    store = KeyStore(d.root / "dkim")
    for key in store.keys(DOMAIN):
        dns.add(key.record_name, "TXT", key.record)
    d.mb("dns", "check", DOMAIN, check=False)
    return [k.selector for k in store.active(DOMAIN)]


def remote_mx(tmp: Path, dns: DnsTestServer, sinks: SinkThread, port: int) -> MxSink:
    """The remote MX of remote.test on 127.0.0.2:`port` (the deployment's delivery.remote_port), with a
    certificate of a CA we do not trust (opportunistic TLS) unless the test puts `sink.ca_path` in
    outbound.ca_file (verified TLS, for REQUIRETLS). It advertises REQUIRETLS (RFC 8689)."""
    ca = CertAuthority.create(tmp / "remote-ca", "Remote MX CA")
    cert = ca.issue(tmp / "mx", ["mx.remote.test"])
    sink = sinks.run(MxSink.start("127.0.0.2", port, cert.chain_path, cert.key_path, hostname="mx.remote.test",
                                  requiretls=True))
    sink.ca_path = ca.cert_path  # type: ignore[attr-defined]  # trusted by a test that sets outbound.ca_file
    sinks.sinks.append(sink)
    dns.add("remote.test", "MX", "10 mx.remote.test")
    dns.add("mx.remote.test", "A", "127.0.0.2")
    return sink


@contextlib.contextmanager
def deployment_with_remote_mx(tmp: Path, accounts: tuple[str, ...], settings: Mapping[tuple[str, str], str] = {}
                              ) -> Iterator[tuple[Deployment, DnsTestServer, MxSink]]:
    """A deployment made by `init` under `tmp/d` (ClamAV off, remote mail to `remote_mx` on a free port, plus
    `settings`), with `accounts` added (password PASSWORD), the loopback DNS and the remote MX. Not started:
    the test publishes DKIM and starts it in the role it needs."""
    port = free_port()
    with DnsTestServer() as dns, SinkThread() as sinks:
        sink = remote_mx(tmp, dns, sinks, port)
        d = Deployment(tmp / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("delivery", "remote_port"): str(port), **settings})
        d.init()
        for who in accounts:
            d.mb("account", "add", who, "--password-stdin", input=f"{PASSWORD}\n")
        yield d, dns, sink
