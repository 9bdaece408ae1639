"""SMTP delivery to remote domains against a real loopback DNS server and real SMTP servers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from delivery_servers import ScriptedHandler, Server, start_smtp

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.delivery.agent import Delivered, PermFailed, TempFailed
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
from mailbastion.dns.resolver import DnsResolver
from mailbastion.smtp.tls import server_context
from mailbastion.spool.record import QueueRecord
from mailbastion.testing.dns_server import DnsTestServer

MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: out\r\n\r\nhello\r\n"


def record(*rcpts: str, sender: str | None = "alice@example.org") -> QueueRecord:
    env = Envelope(sender=parse_address(sender) if sender else None, recipients=tuple(parse_address(r) for r in rcpts))
    return QueueRecord.new("0123456789ABCBEEF0", env, arrival=0.0, client="c", size=len(MESSAGE))


@pytest.fixture
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


@pytest.fixture
async def mx(pki: dict[str, Path]) -> AsyncIterator[Server]:
    """A remote MX offering STARTTLS (with a certificate we do not verify: opportunistic TLS)."""
    server = await start_smtp(ScriptedHandler(lmtp=False), server_context(pki["gateway.crt"], pki["gateway.key"]))
    yield server
    server.server.close()


def agent_for(dns: DnsTestServer, port: int, **kw: object) -> SmtpDeliveryAgent:
    resolver = DnsResolver([dns.host], port=dns.port, timeout=2, cache_size=0)
    return SmtpDeliveryAgent(resolver, local_hostname="gw.example.org", port=port, connect_timeout=2,
                             command_timeout=5, **kw)  # type: ignore[arg-type]


async def test_mx_lookup_starttls_and_per_recipient_results(dns: DnsTestServer, mx: Server) -> None:
    dns.add("example.net", "MX", "10 mx.example.net")
    dns.add("mx.example.net", "A", "127.0.0.1")
    mx.handler.rcpt_replies = {"nobody@example.net": "550 5.1.1 no such user",
                               "busy@example.net": "451 4.3.0 busy"}
    out = await agent_for(dns, mx.port).deliver(
        record("bob@example.net", "nobody@example.net", "busy@example.net", "carol@example.net"), MESSAGE)
    assert isinstance(out["bob@example.net"], Delivered) and "TLSv1." in out["bob@example.net"].response
    assert out["carol@example.net"] == out["bob@example.net"]  # one DATA reply for all accepted
    assert isinstance(out["nobody@example.net"], PermFailed) and "550 5.1.1" in out["nobody@example.net"].error
    assert isinstance(out["busy@example.net"], TempFailed) and "451 4.3.0" in out["busy@example.net"].error
    [got] = mx.handler.received
    assert got.rcpt_tos == ["bob@example.net", "carol@example.net"] and got.mail_from == "alice@example.org"
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")
    assert b"X-Mailbastion" not in got.content  # internal headers never leave for the internet
    assert got.content.replace(b"\r\n", b"\n").endswith(MESSAGE.replace(b"\r\n", b"\n"))


async def test_unreachable_first_mx_falls_back_to_the_next(dns: DnsTestServer, mx: Server) -> None:
    dns.add("example.net", "MX", "10 down.example.net")
    dns.add("example.net", "MX", "20 up.example.net")
    dns.add("down.example.net", "AAAA", "::1")  # nothing listens on ::1 at that port
    dns.add("up.example.net", "A", "127.0.0.1")
    out = await agent_for(dns, mx.port).deliver(record("bob@example.net"), MESSAGE)
    assert isinstance(out["bob@example.net"], Delivered)


async def test_no_mx_uses_the_domain_address_as_implicit_mx(dns: DnsTestServer, mx: Server) -> None:
    dns.add("example.net", "A", "127.0.0.1")
    out = await agent_for(dns, mx.port).deliver(record("bob@example.net"), MESSAGE)
    assert isinstance(out["bob@example.net"], Delivered)
    assert ("example.net", "MX") in dns.queries and ("example.net", "A") in dns.queries


async def test_null_mx_nxdomain_and_servfail(dns: DnsTestServer) -> None:
    dns.add("nullmx.example", "MX", "0 .")
    dns.fail("broken.example")
    agent = agent_for(dns, 9)
    out = await agent.deliver(record("a@nullmx.example", "b@missing.example", "c@broken.example"), MESSAGE)
    assert isinstance(out["a@nullmx.example"], PermFailed) and out["a@nullmx.example"].error.startswith("5.1.10")
    assert isinstance(out["b@missing.example"], PermFailed) and out["b@missing.example"].error.startswith("5.1.2")
    assert isinstance(out["c@broken.example"], TempFailed) and out["c@broken.example"].error.startswith("4.4.3")


async def test_all_hosts_down_is_temporary(dns: DnsTestServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dns.add("example.net", "MX", "10 mx.example.net")
    dns.add("mx.example.net", "A", "127.0.0.1")
    out = await agent_for(dns, port).deliver(record("bob@example.net"), MESSAGE)
    assert isinstance(out["bob@example.net"], TempFailed) and out["bob@example.net"].error.startswith("4.4.1")


async def test_relayhost_takes_every_domain_without_dns(dns: DnsTestServer, mx: Server) -> None:
    agent = agent_for(dns, 25, relayhost=f"127.0.0.1:{mx.port}")
    out = await agent.deliver(record("a@one.example", "b@two.example", sender=None), MESSAGE)
    assert all(isinstance(o, Delivered) for o in out.values()) and len(out) == 2
    assert dns.queries == []
    [got] = mx.handler.received
    assert sorted(got.rcpt_tos) == ["a@one.example", "b@two.example"] and got.mail_from == "<>"


async def test_plain_text_server_still_gets_the_mail(dns: DnsTestServer) -> None:
    server = await start_smtp(ScriptedHandler(lmtp=False), None)  # no STARTTLS offered
    try:
        out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{server.port}").deliver(record("b@x.example"), MESSAGE)
    finally:
        server.server.close()
    assert isinstance(out["b@x.example"], Delivered) and server.handler.received[0].tls_version is None


async def test_data_refusal_applies_to_every_accepted_recipient(dns: DnsTestServer, mx: Server) -> None:
    mx.handler.data_replies = {"*": "554 5.7.1 spam"}
    out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{mx.port}").deliver(
        record("a@x.example", "b@x.example"), MESSAGE)
    assert all(isinstance(o, PermFailed) and "554 5.7.1" in o.error for o in out.values())


async def test_failed_starttls_falls_back_to_plain_text(dns: DnsTestServer, pki: dict[str, Path],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    import ssl

    broken = server_context(pki["gateway.crt"], pki["gateway.key"])
    broken.maximum_version = ssl.TLSVersion.TLSv1_2
    broken.set_ciphers("AES128-SHA")  # no cipher in common with our forward-secret AEAD list
    server = await start_smtp(ScriptedHandler(lmtp=False), broken)
    try:
        out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{server.port}").deliver(record("b@x.example"), MESSAGE)
    finally:
        server.server.close()
    assert isinstance(out["b@x.example"], Delivered)
    assert [r.tls_version for r in server.handler.received] == [None]
    assert "STARTTLS failed" in caplog.text
