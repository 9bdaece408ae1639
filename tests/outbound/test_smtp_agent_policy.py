"""The gateway's SMTP agent (delivery/smtp_client.py) under the outbound TLS policy, against the loopback world
of outbound_world.py: DANE through a real unbound validating a signed zone, MTA-STS over HTTPS from a test
CA, remote MXes with good and bad certificates. A policy failure defers and nothing is sent in clear text;
every session is recorded for TLS-RPT."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from outbound_client import MESSAGE, make_tls
from outbound_world import World

from mailbastion.core.outcome import Deferred, Delivered, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.delivery.connection_cache import SessionCache
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
from mailbastion.outbound.tlsrpt_store import utc_day
from mailbastion.testing.mx_sink import MxSink


@pytest.fixture
async def sinks(world: World) -> AsyncIterator[Callable[..., Awaitable[MxSink]]]:
    started: list[MxSink] = []

    async def start(host: str, **kw: bool) -> MxSink:
        cert = world.certs[host]
        sink = await MxSink.start(world.ips[host], world.mx_port, cert.chain_path, cert.key_path, hostname=host, **kw)
        started.append(sink)
        return sink

    yield start
    for s in started:
        await s.stop()


def agent(world: World, tmp: Path, **kw: object) -> SmtpDeliveryAgent:
    tls, dns = make_tls(world, tmp)
    return SmtpDeliveryAgent(dns, local_hostname="gw.ours.test", port=world.mx_port, connect_timeout=10,
                             command_timeout=20, tls=tls, cache=SessionCache(idle_seconds=0), **kw)  # type: ignore[arg-type]


def request(rcpt: str, **kw: object) -> DeliveryRequest:
    return DeliveryRequest("QID1", "alice@ours.test", (DeliveryRecipient(rcpt),), MESSAGE, **kw)  # type: ignore[arg-type]


def failures(a: SmtpDeliveryAgent) -> list[str]:
    assert a.tls.reports is not None
    return [f.result_type for s in a.tls.reports.sessions(utc_day()) for f in s.failures]


async def test_dane_delivers_over_verified_tls(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.dane.test")
    a = agent(world, tmp_path)
    out = await a.deliver(request("bob@dane.test"))
    assert isinstance(out["bob@dane.test"], Delivered), out
    assert len(sink.received) == 1 and sink.received[0].tls_version in ("TLSv1.2", "TLSv1.3")
    assert a.tls.reports is not None
    [day] = a.tls.reports.sessions(utc_day())
    assert day.policy["policy-type"] == "tlsa" and day.successes == 1 and not day.failures


async def test_dane_with_a_wrong_tlsa_is_deferred_and_nothing_is_sent(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.wrong.dane.test")
    a = agent(world, tmp_path)
    bob = (await a.deliver(request("bob@wrong.dane.test")))["bob@wrong.dane.test"]
    assert isinstance(bob, Deferred) and bob.reply.status == "4.7.5" and "TLSA" in bob.reply.text, bob
    assert sink.received == [] and failures(a)  # reported, never sent in clear text


async def test_mta_sts_enforce_with_a_bad_certificate_is_deferred(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.sts.test")
    a = agent(world, tmp_path)
    bob = (await a.deliver(request("bob@sts.test")))["bob@sts.test"]
    assert isinstance(bob, Deferred) and bob.reply.status == "4.7.5", bob
    assert sink.received == [] and failures(a) == ["certificate-not-trusted"]


async def test_mta_sts_enforce_with_a_good_certificate_is_delivered(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.stsgood.test")
    a = agent(world, tmp_path)
    assert isinstance((await a.deliver(request("bob@stsgood.test")))["bob@stsgood.test"], Delivered)
    assert len(sink.received) == 1 and failures(a) == []


async def test_a_domain_without_policy_gets_opportunistic_tls(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.plain.test")  # a certificate of a CA we do not trust: fine for `may`
    a = agent(world, tmp_path)
    assert isinstance((await a.deliver(request("bob@plain.test")))["bob@plain.test"], Delivered)
    assert sink.received[0].tls_version in ("TLSv1.2", "TLSv1.3")


async def test_a_local_verify_policy_defers_an_untrusted_certificate(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.plain.test")
    tls, dns = make_tls(world, tmp_path, local={"plain.test": "verify"})
    a = SmtpDeliveryAgent(dns, port=world.mx_port, tls=tls, connect_timeout=10, command_timeout=20)
    bob = (await a.deliver(request("bob@plain.test")))["bob@plain.test"]
    assert isinstance(bob, Deferred) and bob.reply.status == "4.7.5" and sink.received == []


async def test_requiretls_is_passed_on_over_dane(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.dane.test", requiretls=True)
    a = agent(world, tmp_path)
    out = await a.deliver(request("bob@dane.test", requiretls=True))
    assert isinstance(out["bob@dane.test"], Delivered), out
    assert "REQUIRETLS" in sink.received[0].mail_options


async def test_requiretls_without_a_verifiable_policy_fails_for_good(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.plain.test")
    bob = (await agent(world, tmp_path).deliver(request("bob@plain.test", requiretls=True)))["bob@plain.test"]
    assert isinstance(bob, Failed) and bob.reply.status == "5.7.10" and sink.received == []
