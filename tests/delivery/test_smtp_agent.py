"""The outbound SMTP agent against real remote MXes (aiosmtpd sinks on 127.0.0.N) found through the loopback
DNS server: MX order, null and implicit MX, the connection cache, per-destination concurrency, SMTPUTF8 and
8BITMIME rules, sessions lost before and during DATA."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from mailbastion.core.outcome import Deferred, Delivered, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.delivery.connection_cache import SessionCache
from mailbastion.delivery.mx import mx_hosts, rank_mx
from mailbastion.delivery.sent_log import SentLog
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
from mailbastion.dns.resolver import DnsResolver
from mailbastion.testing.certificates import CertAuthority, Issued
from mailbastion.testing.deployment import free_port
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.mx_sink import MxSink

MESSAGE = b"From: alice@example.org\r\nTo: bob@remote.test\r\nMessage-ID: <m1@example.org>\r\nSubject: hi\r\n\r\nhello\r\n"

SinkFactory = Callable[..., Awaitable[MxSink]]


def request(*rcpts: str, message: bytes = MESSAGE, queue_id: str = "Q1", **kw: object) -> DeliveryRequest:
    return DeliveryRequest(queue_id, "alice@example.org", tuple(DeliveryRecipient(r) for r in rcpts), message,
                           **kw)  # type: ignore[arg-type]


@pytest.fixture
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Issued]:
    tmp = tmp_path_factory.mktemp("remote-ca")
    ca = CertAuthority.create(tmp / "ca", "Remote Test CA")
    return {h: ca.issue(tmp / h, [h]) for h in ("mx1.remote.test", "mx2.remote.test", "remote.test")}


@pytest.fixture
async def sinks(certs: dict[str, Issued]) -> AsyncIterator[tuple[int, SinkFactory]]:
    port = free_port()
    started: list[MxSink] = []

    async def start(host: str, ip: str, **kw: bool) -> MxSink:
        cert = certs.get(host)
        sink = await MxSink.start(ip, port, cert.chain_path if cert else None, cert.key_path if cert else None,
                                  hostname=host, **kw)
        started.append(sink)
        return sink

    yield port, start
    for s in started:
        await s.stop()


def agent(dns: DnsTestServer, port: int, **kw: object) -> SmtpDeliveryAgent:
    resolver = DnsResolver([dns.host], port=dns.port, timeout=2, cache_size=0)
    return SmtpDeliveryAgent(resolver, local_hostname="gw.example.org", port=port, connect_timeout=5,
                             command_timeout=10, **kw)  # type: ignore[arg-type]


def test_mx_order_shuffles_only_equal_preferences_and_keeps_at_most_max_hosts() -> None:
    records = ["20 b2.test", "10 a1.test", "20 b1.test", "30 c.test", "10 a2.test", "10 A1.test."]
    seen = set()
    for _ in range(200):
        order = rank_mx(records, max_hosts=10)
        assert order is not None and len(order) == 5  # a host listed twice is tried once
        assert set(order[:2]) == {"a1.test", "a2.test"} and set(order[2:4]) == {"b1.test", "b2.test"}
        assert order[4] == "c.test"
        seen.add(tuple(order))
    assert len(seen) == 4  # both tie groups really are shuffled
    assert rank_mx(records, max_hosts=3)[:2] in (["a1.test", "a2.test"], ["a2.test", "a1.test"])  # type: ignore[index]
    assert len(rank_mx(records, max_hosts=3) or []) == 3
    assert rank_mx(["0 ."], max_hosts=5) is None and rank_mx(["0 @"], max_hosts=5) is None
    assert rank_mx(["0 .", "10 real.test"], max_hosts=5) == ["real.test"]  # not a valid null MX (RFC 7505 §3)
    assert rank_mx(["nonsense", "5 ok.test"], max_hosts=5) == ["ok.test"]


async def test_null_mx_fails_and_implicit_mx_needs_an_address(dns: DnsTestServer) -> None:
    resolver = DnsResolver([dns.host], port=dns.port, timeout=2, cache_size=0)
    dns.add("nullmx.test", "MX", "0 .")
    dns.add("noaddr.test", "TXT", "v=spf1 -all")  # exists, no MX, no address
    dns.add("implicit.test", "A", "127.0.0.9")
    null = await mx_hosts(resolver, "nullmx.test")
    assert isinstance(null, Failed) and (null.reply.code, null.reply.status) == (556, "5.1.10")
    none = await mx_hosts(resolver, "noaddr.test")
    assert isinstance(none, Failed) and none.reply.status == "5.1.2"
    implicit = await mx_hosts(resolver, "implicit.test")
    assert not isinstance(implicit, (Failed, Deferred)) and implicit.hosts == ("implicit.test",) and implicit.implicit


async def test_opportunistic_tls_and_per_recipient_outcomes(dns: DnsTestServer, sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2")
    sink.rcpt_replies["nobody@remote.test"] = "550 5.1.1 no such user"
    sink.rcpt_replies["later@remote.test"] = "452 4.2.2 mailbox full"
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    out = await agent(dns, port).deliver(request("bob@remote.test", "nobody@remote.test", "later@remote.test"))
    assert isinstance(out["bob@remote.test"], Delivered) and out["bob@remote.test"].remote == "mx1.remote.test"
    nobody, later = out["nobody@remote.test"], out["later@remote.test"]
    assert isinstance(nobody, Failed) and nobody.reply.status == "5.1.1"
    assert isinstance(later, Deferred) and later.reply.status == "4.2.2"
    [got] = sink.received
    assert got.rcpt_tos == ["bob@remote.test"] and got.tls_version in ("TLSv1.2", "TLSv1.3")  # untrusted CA: may


async def test_a_session_carries_several_messages_to_one_mx(dns: DnsTestServer,
                                                           sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    a = agent(dns, port, cache=SessionCache(idle_seconds=30))
    for i in range(3):
        out = await a.deliver(request("bob@remote.test", queue_id=f"Q{i}"))
        assert isinstance(out["bob@remote.test"], Delivered)
    assert len(sink.received) == 3 and sink.connections == 1 and a.connections_opened == 1
    assert a.cache.reused == 2
    await a.close()


async def test_without_the_cache_each_message_has_its_own_session(dns: DnsTestServer,
                                                                   sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    a = agent(dns, port, cache=SessionCache(idle_seconds=0))
    for i in range(2):
        await a.deliver(request("bob@remote.test", queue_id=f"Q{i}"))
    assert len(sink.received) == 2 and sink.connections == 2


async def test_an_idle_session_is_closed_after_the_idle_limit(dns: DnsTestServer,
                                                             sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    a = agent(dns, port, cache=SessionCache(idle_seconds=0.2))
    await a.deliver(request("bob@remote.test"))
    assert len(a.cache) == 1
    for _ in range(200):
        if len(a.cache) == 0 and sink.handler.open_now == 0:
            break
        await asyncio.sleep(0.05)
    assert len(a.cache) == 0 and sink.handler.open_now == 0  # QUIT sent, the remote saw the close


async def test_a_cached_session_the_server_dropped_is_replaced_before_any_data(
        dns: DnsTestServer, sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    a = agent(dns, port, cache=SessionCache(idle_seconds=30))
    await a.deliver(request("bob@remote.test", queue_id="Q1"))
    [cached] = [s for sessions in a.cache._idle.values() for s in sessions]
    cached.smtp.transport.close()  # as if the remote had timed the idle session out
    await asyncio.sleep(0.05)
    out = await a.deliver(request("bob@remote.test", queue_id="Q2"))
    assert isinstance(out["bob@remote.test"], Delivered)
    assert len(sink.received) == 2 and sink.connections == 2


async def test_concurrency_per_destination_is_limited(dns: DnsTestServer, sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    limited = agent(dns, port, destination_concurrency=2, cache=SessionCache(idle_seconds=0))
    outs = await asyncio.gather(*(limited.deliver(request("bob@remote.test", queue_id=f"Q{i}")) for i in range(8)))
    assert all(isinstance(o["bob@remote.test"], Delivered) for o in outs)
    assert len(sink.received) == 8 and sink.most_at_once <= 2
    assert limited.limits._slots == {}  # destinations with nothing in flight are forgotten


async def test_equal_preference_mx_hosts_both_get_mail(dns: DnsTestServer, sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    one = await start("mx1.remote.test", "127.0.0.2")
    two = await start("mx2.remote.test", "127.0.0.3")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("remote.test", "MX", "10 mx2.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    dns.add("mx2.remote.test", "A", "127.0.0.3")
    a = agent(dns, port, cache=SessionCache(idle_seconds=0))
    for i in range(30):
        await a.deliver(request("bob@remote.test", queue_id=f"Q{i}"))
    assert len(one.received) + len(two.received) == 30
    assert one.received and two.received  # 2^-29 chance of a false failure


async def test_smtputf8_only_when_needed_and_refused_where_missing(dns: DnsTestServer,
                                                                  sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2", smtputf8=False)
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    a = agent(dns, port)
    # Flagged SMTPUTF8 but all-ASCII: sent without the parameter (downgrade).
    out = await a.deliver(request("bob@remote.test", smtputf8=True))
    assert isinstance(out["bob@remote.test"], Delivered) and "SMTPUTF8" not in sink.received[0].mail_options
    # A UTF-8 header needs it: 553 5.6.7, permanent, nothing sent.
    utf8 = "Subject: Grüße\r\nFrom: alice@example.org\r\n\r\nhallo\r\n".encode()
    out = await a.deliver(request("bob@remote.test", message=utf8, smtputf8=True, queue_id="Q2"))
    bob = out["bob@remote.test"]
    assert isinstance(bob, Failed) and (bob.reply.code, bob.reply.status) == (553, "5.6.7") and len(sink.received) == 1


async def test_smtputf8_and_8bitmime_parameters_when_offered(dns: DnsTestServer,
                                                            sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    sink = await start("mx1.remote.test", "127.0.0.2")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    utf8 = "Subject: Grüße\r\nFrom: alice@example.org\r\n\r\nhällo\r\n".encode()
    out = await agent(dns, port).deliver(request("bob@remote.test", message=utf8, smtputf8=True))
    assert isinstance(out["bob@remote.test"], Delivered)
    assert "SMTPUTF8" in sink.received[0].mail_options
    assert sink.received[0].content.replace(b"\r\n", b"\n").endswith("hällo\n".encode())


async def test_a_refused_greeting_moves_to_the_next_mx(dns: DnsTestServer, sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    good = await start("mx2.remote.test", "127.0.0.3")

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554 5.3.2 not accepting mail\r\n")
        await writer.drain()
        writer.close()

    bad = await asyncio.start_server(refuse, "127.0.0.2", port)
    try:
        dns.add("remote.test", "MX", "10 mx1.remote.test")
        dns.add("remote.test", "MX", "20 mx2.remote.test")
        dns.add("mx1.remote.test", "A", "127.0.0.2")
        dns.add("mx2.remote.test", "A", "127.0.0.3")
        out = await agent(dns, port).deliver(request("bob@remote.test"))
        assert isinstance(out["bob@remote.test"], Delivered) and len(good.received) == 1
        await good.stop()
        out = await agent(dns, port).deliver(request("bob@remote.test", queue_id="Q2"))
        bob = out["bob@remote.test"]
        # The last reason stands: mx2 is down (deferred), mx1 refused before it.
        assert isinstance(bob, Deferred) and bob.reply.status == "4.4.1"
    finally:
        bad.close()
        await bad.wait_closed()


async def test_a_connection_lost_during_data_defers_without_retrying(dns: DnsTestServer) -> None:
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    port = free_port()
    data_seen = []

    async def dropper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx1 ESMTP\r\n")
        while line := await reader.readline():
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                writer.write(b"250-mx1\r\n250 8BITMIME\r\n")
            elif cmd == b"DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                data_seen.append(await reader.readline())
                writer.close()  # gone before the final reply
                return
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()

    server = await asyncio.start_server(dropper, "127.0.0.2", port)
    try:
        out = await agent(dns, port, cache=SessionCache(idle_seconds=30)).deliver(request("bob@remote.test"))
    finally:
        server.close()
        await server.wait_closed()
    bob = out["bob@remote.test"]
    assert isinstance(bob, Deferred) and bob.reply.status == "4.4.2" and "during DATA" in bob.reply.text
    assert len(data_seen) == 1  # one attempt: never sent twice by us


async def test_delivered_messages_are_remembered_for_bounce_matching(dns: DnsTestServer, tmp_path: Path,
                                                                    sinks: tuple[int, SinkFactory]) -> None:
    port, start = sinks
    await start("mx1.remote.test", "127.0.0.2")
    dns.add("remote.test", "MX", "10 mx1.remote.test")
    dns.add("mx1.remote.test", "A", "127.0.0.2")
    sent = SentLog(tmp_path / "sent.db")
    await agent(dns, port, sent_log=sent).deliver(request("bob@remote.test", "gone@nowhere.invalid",
                                                          dsn_envid="env-7", queue_id="QID7"))
    [entry] = sent.find(message_ids=["<m1@example.org>"])
    assert (entry.queue_id, entry.recipient, entry.envid, entry.remote) == ("QID7", "bob@remote.test", "env-7",
                                                                           "mx1.remote.test")
    assert [e.queue_id for e in sent.find(envid="env-7")] == ["QID7"]
    assert sent.find(message_ids=["<other@x>"]) == []
    assert oct((tmp_path / "sent.db").stat().st_mode & 0o777) == "0o600"
