"""The outbound TLS policy against real servers on loopback: remote MXes (aiosmtpd with test
certificates), DANE through a real unbound validating a zone signed with ldns, MTA-STS policies over
HTTPS from a test CA, and a small SMTP client of the tests' own calling the policy as the gateway will."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from outbound_client import MESSAGE, deliver, make_tls
from outbound_world import World

from mailbastion.dns.resolver import DnsResolver
from mailbastion.outbound import (
    PolicySource,
    TlsMode,
)
from mailbastion.outbound.tlsrpt_store import utc_day
from mailbastion.testing.mx_sink import MxSink


@pytest.fixture
async def sinks(world: World) -> AsyncIterator[Callable[..., Awaitable[MxSink]]]:
    started: list[MxSink] = []

    async def start(host: str, **kw: bool) -> MxSink:
        cert = world.certs[host]
        sink = await MxSink.start(world.ips[host], world.mx_port, cert.chain_path, cert.key_path, hostname=host,
                                  **kw)
        started.append(sink)
        return sink

    yield start
    for s in started:
        await s.stop()


async def test_dane_with_the_right_tlsa_is_delivered_with_verified_tls(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.dane.test")
    tls, dns = make_tls(world, tmp_path)
    policy = await tls.policy("dane.test", ["mx.dane.test"])
    req = policy.for_host("mx.dane.test")
    assert (req.mode, req.source) == (TlsMode.DANE, PolicySource.DANE) and req.tlsa
    result = await deliver(tls, dns, "bob@dane.test", MESSAGE, port=world.mx_port)
    assert result.status == "delivered", result.text
    assert result.session is not None and result.session.verified and "DANE" in result.session.describe()
    assert len(sink.received) == 1 and sink.received[0].tls_version in ("TLSv1.2", "TLSv1.3")


async def test_dane_ta_chain_to_the_tlsa_anchor_is_delivered(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.ta.dane.test")
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@ta.dane.test", MESSAGE, port=world.mx_port)
    assert result.status == "delivered" and result.session is not None and result.session.verified, result.text
    assert len(sink.received) == 1


async def test_dane_with_a_wrong_tlsa_is_deferred_never_sent_in_clear(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.wrong.dane.test")
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@wrong.dane.test", MESSAGE, port=world.mx_port)
    assert result.status == "deferred" and result.text.startswith("4.7.5"), result.text
    assert "TLSA" in result.text and sink.received == []


async def test_bogus_tlsa_on_a_signed_zone_defers_without_connecting(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.bogus.dane.test")
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@bogus.dane.test", MESSAGE, port=world.mx_port)
    assert result.status == "deferred" and "TLSA lookup" in result.text, result.text
    assert sink.received == []
    day = tls.reports.sessions(utc_day())
    assert [f.result_type for s in day for f in s.failures] == ["dnssec-invalid"]


async def test_secure_denial_of_tlsa_falls_through_to_opportunistic(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.notlsa.dane.test")
    tls, dns = make_tls(world, tmp_path)
    req = (await tls.policy("notlsa.dane.test", ["mx.notlsa.dane.test"])).for_host("mx.notlsa.dane.test")
    assert (req.mode, req.source) == (TlsMode.MAY, PolicySource.OPPORTUNISTIC)
    result = await deliver(tls, dns, "bob@notlsa.dane.test", MESSAGE, port=world.mx_port)
    assert result.status == "delivered" and result.session is not None and result.session.tls
    assert not result.session.verified and sink.received[0].tls_version is not None


async def test_unusable_tlsa_means_encryption_without_authentication(world: World, tmp_path: Path) -> None:
    tls, _ = make_tls(world, tmp_path)
    req = (await tls.policy("unusable.dane.test", ["mx.unusable.dane.test"])).for_host("mx.unusable.dane.test")
    assert (req.mode, req.source, req.enforced) == (TlsMode.ENCRYPT, PolicySource.DANE, True)


async def test_mta_sts_enforce_with_an_untrusted_certificate_is_deferred(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.sts.test")
    tls, dns = make_tls(world, tmp_path)
    req = (await tls.policy("sts.test", ["mx.sts.test"])).for_host("mx.sts.test")
    assert (req.mode, req.source, req.report_only) == (TlsMode.VERIFY, PolicySource.MTA_STS, False)
    result = await deliver(tls, dns, "bob@sts.test", MESSAGE, port=world.mx_port)
    assert result.status == "deferred" and "not trusted" in result.text, result.text
    assert sink.received == []
    assert (tmp_path / "mta-sts" / "sts.test.json").exists()  # the policy is kept on disk


async def test_mta_sts_enforce_with_an_expired_certificate_is_deferred(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.stsexpired.test")
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@stsexpired.test", MESSAGE, port=world.mx_port)
    assert result.status == "deferred" and "validity" in result.text and sink.received == []


async def test_mta_sts_enforce_with_a_good_certificate_is_delivered(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.stsgood.test")
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@stsgood.test", MESSAGE, port=world.mx_port)
    assert result.status == "delivered" and result.session is not None and result.session.verified
    assert len(sink.received) == 1


async def test_mta_sts_testing_reports_a_bad_certificate_and_delivers(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.ststesting.test")
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@ststesting.test", MESSAGE, port=world.mx_port)
    assert result.status == "delivered" and result.session is not None and not result.session.verified
    assert len(sink.received) == 1 and sink.received[0].tls_version is not None
    [day] = tls.reports.sessions(utc_day())
    assert day.policy["policy-type"] == "sts" and day.successes == 0
    assert [(f.result_type, f.count) for f in day.failures] == [("certificate-host-mismatch", 1)]


async def test_no_policy_gets_opportunistic_tls_even_with_an_untrusted_certificate(world: World, sinks,
                                                                                    tmp_path: Path) -> None:
    sink = await sinks("mx.plain.test")
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@plain.test", MESSAGE, port=world.mx_port)
    assert result.status == "delivered" and result.session is not None and result.session.tls
    assert sink.received[0].tls_version in ("TLSv1.2", "TLSv1.3")


async def test_no_starttls_without_policy_goes_in_clear_but_a_local_encrypt_policy_defers(
        world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.plain.test", starttls=False)
    tls, dns = make_tls(world, tmp_path)
    result = await deliver(tls, dns, "bob@plain.test", MESSAGE, port=world.mx_port)
    assert result.status == "delivered" and sink.received[0].tls_version is None
    strict, dns = make_tls(world, tmp_path / "strict", local={"plain.test": "encrypt"})
    result = await deliver(strict, dns, "bob@plain.test", MESSAGE, port=world.mx_port)
    assert result.status == "deferred" and result.text.startswith("4.7.4"), result.text
    assert len(sink.received) == 1


async def test_local_verify_policy_refuses_an_untrusted_certificate(world: World, sinks, tmp_path: Path) -> None:
    sink = await sinks("mx.plain.test")
    tls, dns = make_tls(world, tmp_path, local={"plain.test": "verify"})
    result = await deliver(tls, dns, "bob@plain.test", MESSAGE, port=world.mx_port)
    assert result.status == "deferred" and "not trusted" in result.text and sink.received == []


async def test_ad_bit_from_a_resolver_that_does_not_validate_is_ignored(world: World, sinks, tmp_path: Path) -> None:
    """liar.test is unsigned; the loopback DNS server serves a TLSA record that would never match, and sets
    AD on every answer. Through the validating unbound it is insecure (unbound validates for itself); with
    no DNSSEC resolver configured, the ordinary resolver's AD is never looked at. Delivered both ways."""
    sink = await sinks("mx.liar.test")
    tls, dns = make_tls(world, tmp_path)
    req = (await tls.policy("liar.test", ["mx.liar.test"])).for_host("mx.liar.test")
    assert (req.mode, req.tlsa) == (TlsMode.MAY, ())
    assert (await deliver(tls, dns, "bob@liar.test", MESSAGE, port=world.mx_port)).status == "delivered"
    direct = DnsResolver([world.plain.host], port=world.plain.port, timeout=5)
    tls2, _ = make_tls(world, tmp_path / "2", dnssec=False, resolver=direct)
    req = (await tls2.policy("liar.test", ["mx.liar.test"])).for_host("mx.liar.test")
    assert (req.mode, req.source) == (TlsMode.MAY, PolicySource.OPPORTUNISTIC)
    assert (await deliver(tls2, direct, "bob@liar.test", MESSAGE, port=world.mx_port)).status == "delivered"
    assert len(sink.received) == 2


async def test_requiretls_needs_a_verified_path_and_the_servers_requiretls(world: World, sinks,
                                                                           tmp_path: Path) -> None:
    tls, dns = make_tls(world, tmp_path)
    # No DNSSEC and no MTA-STS: permanent 5.7.10 (RFC 8689).
    await sinks("mx.plain.test")
    result = await deliver(tls, dns, "bob@plain.test", MESSAGE, port=world.mx_port, requiretls=True)
    assert result.status == "failed" and result.text.startswith("5.7.10"), result.text
    # DANE verified, but the server does not offer REQUIRETLS: 5.7.30.
    plain_dane = await sinks("mx.dane.test")
    result = await deliver(tls, dns, "bob@dane.test", MESSAGE, port=world.mx_port, requiretls=True)
    assert result.status == "failed" and result.text.startswith("5.7.30") and plain_dane.received == []
    await plain_dane.stop()
    # MTA-STS enforce, PKIX verified, REQUIRETLS offered: delivered with the MAIL parameter.
    good = await sinks("mx.stsgood.test", requiretls=True)
    result = await deliver(tls, dns, "bob@stsgood.test", MESSAGE, port=world.mx_port, requiretls=True)
    assert result.status == "delivered", result.text
    assert "REQUIRETLS" in good.received[0].mail_options
