"""SMTP delivery to remote domains against a real loopback DNS server and real SMTP servers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from delivery_servers import LineServer, ScriptedHandler, Server, start_smtp

from mailbastion.core.outcome import Deferred, Delivered, Failed, Handoff
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent, xtext
from mailbastion.dns.resolver import DnsResolver
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.tls_policy import server_context

MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: out\r\n\r\nhello\r\n"


def record(*rcpts: str | DeliveryRecipient, sender: str | None = "alice@example.org", **kw: object) -> DeliveryRequest:
    recipients = tuple(r if isinstance(r, DeliveryRecipient) else DeliveryRecipient(r) for r in rcpts)
    return DeliveryRequest("0123456789ABCBEEF0", sender or "", recipients, MESSAGE, **kw)  # type: ignore[arg-type]


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
        record("bob@example.net", "nobody@example.net", "busy@example.net", "carol@example.net"))
    assert out["bob@example.net"] == Delivered(Reply(250, "2.0.0", "Ok: queued"), "mx.example.net", Handoff.RELAYED)
    assert out["carol@example.net"] == out["bob@example.net"]  # one DATA reply for all accepted
    assert out["nobody@example.net"] == Failed(Reply(550, "5.1.1", "no such user"), "mx.example.net")
    assert out["busy@example.net"] == Deferred(Reply(451, "4.3.0", "busy"), "mx.example.net")
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
    out = await agent_for(dns, mx.port).deliver(record("bob@example.net"))
    assert isinstance(out["bob@example.net"], Delivered)


async def test_no_mx_uses_the_domain_address_as_implicit_mx(dns: DnsTestServer, mx: Server) -> None:
    dns.add("example.net", "A", "127.0.0.1")
    out = await agent_for(dns, mx.port).deliver(record("bob@example.net"))
    assert isinstance(out["bob@example.net"], Delivered)
    assert ("example.net", "MX") in dns.queries and ("example.net", "A") in dns.queries


async def test_null_mx_nxdomain_and_servfail(dns: DnsTestServer) -> None:
    dns.add("nullmx.example", "MX", "0 .")
    dns.fail("broken.example")
    agent = agent_for(dns, 9)
    out = await agent.deliver(record("a@nullmx.example", "b@missing.example", "c@broken.example"))
    a, b, c = out["a@nullmx.example"], out["b@missing.example"], out["c@broken.example"]
    assert isinstance(a, Failed) and (a.reply.code, a.reply.status) == (556, "5.1.10")
    assert isinstance(b, Failed) and b.reply.status == "5.1.2"
    assert isinstance(c, Deferred) and c.reply.status == "4.4.3" and not c.link_down


async def test_all_hosts_down_is_temporary(dns: DnsTestServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dns.add("example.net", "MX", "10 mx.example.net")
    dns.add("mx.example.net", "A", "127.0.0.1")
    out = await agent_for(dns, port).deliver(record("bob@example.net"))
    bob = out["bob@example.net"]
    assert isinstance(bob, Deferred) and bob.reply.status == "4.4.1" and not bob.link_down  # the Internet back-off


async def test_relayhost_takes_every_domain_without_dns(dns: DnsTestServer, mx: Server) -> None:
    agent = agent_for(dns, 25, relayhost=f"127.0.0.1:{mx.port}")
    out = await agent.deliver(record("a@one.example", "b@two.example", sender=None))
    assert all(isinstance(o, Delivered) for o in out.values()) and len(out) == 2
    assert dns.queries == []
    [got] = mx.handler.received
    assert sorted(got.rcpt_tos) == ["a@one.example", "b@two.example"] and got.mail_from == "<>"


async def test_plain_text_server_still_gets_the_mail(dns: DnsTestServer) -> None:
    server = await start_smtp(ScriptedHandler(lmtp=False), None)  # no STARTTLS offered
    try:
        out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{server.port}").deliver(record("b@x.example"))
    finally:
        server.server.close()
    assert isinstance(out["b@x.example"], Delivered) and server.handler.received[0].tls_version is None


async def test_data_refusal_applies_to_every_accepted_recipient(dns: DnsTestServer, mx: Server) -> None:
    mx.handler.data_replies = {"*": "554 5.7.1 spam"}
    out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{mx.port}").deliver(
        record("a@x.example", "b@x.example"))
    assert all(o == Failed(Reply(554, "5.7.1", "spam"), "127.0.0.1") for o in out.values())


async def test_failed_starttls_falls_back_to_plain_text(dns: DnsTestServer, pki: dict[str, Path],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    import ssl

    broken = server_context(pki["gateway.crt"], pki["gateway.key"])
    broken.maximum_version = ssl.TLSVersion.TLSv1_2
    broken.set_ciphers("AES128-SHA")  # no cipher in common with our forward-secret AEAD list
    server = await start_smtp(ScriptedHandler(lmtp=False), broken)
    try:
        out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{server.port}").deliver(record("b@x.example"))
    finally:
        server.server.close()
    assert isinstance(out["b@x.example"], Delivered)
    assert [r.tls_version for r in server.handler.received] == [None]
    assert "STARTTLS failed" in caplog.text


async def test_dsn_parameters_go_to_a_next_hop_that_offers_dsn(dns: DnsTestServer) -> None:
    handler = ScriptedHandler(lmtp=False)
    hop = await LineServer(handler, extensions=("8BITMIME", "DSN", "ENHANCEDSTATUSCODES")).start(None)
    try:
        out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{hop.port}").deliver(record(
            DeliveryRecipient("a@x.example", ("SUCCESS", "FAILURE"), "rfc822;Alice+Work@x.example"),
            DeliveryRecipient("b@x.example"), dsn_ret="HDRS", dsn_envid="id 1=2"))
    finally:
        hop.close()
    assert all(isinstance(o, Delivered) and o.handoff is Handoff.TRANSFERRED for o in out.values())
    [got] = handler.received
    assert got.mail_params == ["RET=HDRS", "ENVID=id+201+3D2"]  # RFC 3461 §4: xtext
    assert got.rcpt_params == {"a@x.example": ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Alice+2BWork@x.example"],
                               "b@x.example": []}


async def test_no_dsn_parameters_without_dsn_and_success_is_ours_to_report(dns: DnsTestServer) -> None:
    handler = ScriptedHandler(lmtp=False)
    hop = await LineServer(handler, extensions=("8BITMIME",)).start(None)
    try:
        out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{hop.port}").deliver(record(
            DeliveryRecipient("a@x.example", ("SUCCESS",)), dsn_ret="FULL", dsn_envid="E"))
    finally:
        hop.close()
    assert out["a@x.example"] == Delivered(Reply(250, "2.0.0", "Ok: queued"), "127.0.0.1", Handoff.RELAYED)
    assert handler.received[0].mail_params == [] and handler.received[0].rcpt_params == {"a@x.example": []}


async def test_requiretls_never_leaves_over_unverified_tls(dns: DnsTestServer, mx: Server) -> None:
    # No DNSSEC-validated MX and no MTA-STS policy for the next hop: RFC 8689 §4.2.1's permanent 5.7.10.
    out = await agent_for(dns, 25, relayhost=f"127.0.0.1:{mx.port}").deliver(record("a@x.example", requiretls=True))
    a = out["a@x.example"]
    assert isinstance(a, Failed) and (a.reply.code, a.reply.status) == (550, "5.7.10"), a
    assert mx.handler.received == []


def test_xtext_encodes_plus_equals_controls_and_non_ascii() -> None:
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext("plain!~") == "plain!~"
    assert xtext("é") == "+C3+A9"
