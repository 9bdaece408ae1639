"""The gateway's relay listener for the internal host, over real loopback sockets: only a client certificate
of our CA naming the internal role may relay; outbound mail is scanned by the same anti-virus engines and
scored by the spam filter, and refused with a clear reply (and an alarm) when it must not leave."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import aiosmtplib
import pytest
from relay_kit import RelayWorld

from mailbastion.pki import make_deployment_pki
from mailbastion.spam.rules import GTUBE
from mailbastion.spool.layout import QueueState
from mailbastion.testing.av import WRAPPINGS
from mailbastion.testing.clamd import EICAR

CLEAN = (b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: minutes of the meeting\r\n"
         b"Message-ID: <clean.1@example.test>\r\nDate: " + formatdate().encode() + b"\r\n\r\n"
         b"Hello Bob,\r\n\r\nplease find the minutes of Tuesday's meeting below.\r\n")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki") / "tls"
    make_deployment_pki(folder, "gw.example.test")
    return folder


@pytest.fixture
async def world(tmp_path: Path, tls: Path) -> AsyncIterator[RelayWorld]:
    async with RelayWorld.start(tmp_path / "gw", tls) as w:
        yield w


def alarms(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbound.alarm")]


async def test_the_internal_certificate_relays_to_any_domain(world: RelayWorld) -> None:
    code, text = await world.send(CLEAN, rcpts=("bob@remote.test", "carol@elsewhere.example"))
    assert code == 250 and "queued as" in text
    [qid] = world.spool_ids()
    record, message = world.spool.layout.read(QueueState.INCOMING, qid)
    assert record.sender == "alice@example.test"
    assert [r.address for r in record.recipients] == ["bob@remote.test", "carol@elsewhere.example"]
    assert message.startswith(b"Received: from internal.example.test") and b"with ESMTPS" in message.split(b"\r\n\r\n")[0]
    assert message.endswith(CLEAN) and b"X-Spam" not in message  # nothing of our verdict is added outbound


async def test_the_outbound_pipeline_has_no_inbound_sender_checks(world: RelayWorld) -> None:
    names = [c.name for c in world.relay.handler.pipeline.checks]
    assert names and set(names) <= {"antivirus", "gtube", "spam_rules", "spam_classifier"}
    assert "antivirus" in names and "gtube" in names


async def test_no_client_certificate_cannot_even_finish_the_handshake(world: RelayWorld) -> None:
    with pytest.raises((aiosmtplib.SMTPException, OSError)):
        smtp = await world.connect(cert=None)
        await smtp.ehlo()  # TLS 1.3: the server's refusal of the handshake arrives with the first read
        await smtp.mail("alice@example.test")
    assert world.spool_ids() == []


@pytest.mark.parametrize("role", ["gateway", "mda"])
async def test_a_certificate_of_another_role_is_refused(world: RelayWorld, role: str) -> None:
    # The gateway's own LMTP client certificate: our CA, but not the internal role (554 at connect). The MDA's
    # certificate is a server certificate (no clientAuth): the handshake itself fails.
    try:
        code, text = await world.send(CLEAN, cert=role)
    except (aiosmtplib.SMTPException, OSError):
        assert role == "mda"
    else:
        assert (code, role) == (554, "gateway") and "Relaying denied" in text
    assert world.spool_ids() == []


async def test_an_internal_certificate_from_another_ca_is_refused(world: RelayWorld, tmp_path: Path) -> None:
    rogue = tmp_path / "rogue"
    make_deployment_pki(rogue, "gw.example.test")
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=world.port, use_tls=True, timeout=30,
                           tls_context=_rogue_context(rogue, world.tls))
    with pytest.raises((aiosmtplib.SMTPException, OSError)):
        await smtp.connect()
        await smtp.ehlo()
        await smtp.mail("alice@example.test")
    assert world.spool_ids() == []


def _rogue_context(rogue: Path, ours: Path) -> ssl.SSLContext:
    from mailbastion.tls_policy import client_context

    return client_context(ca=ours / "ca.crt", cert=rogue / "internal-client.crt", key=rogue / "internal-client.key",
                          check_hostname=False)


async def test_eicar_outbound_is_refused_with_a_clear_reply_and_an_alarm(world: RelayWorld,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    message = WRAPPINGS["plain_attachment"](EICAR, "eicar.com")
    code, text = await world.send(message)
    assert code == 554 and "malware detected" in text and "Not sent" in text, text
    assert world.spool_ids() == []
    [alarm] = alarms(caplog)
    assert "reason=malware" in alarm and "sender=alice@example.test" in alarm and "certificate=internal" in alarm


async def test_gtube_outbound_is_refused_and_alarmed(world: RelayWorld, caplog: pytest.LogCaptureFixture) -> None:
    message = CLEAN.replace(b"Hello Bob,", b"Hello Bob, " + GTUBE)
    code, text = await world.send(message)
    assert code == 554 and "looks like spam" in text, text
    assert world.spool_ids() == []
    [alarm] = alarms(caplog)
    assert "reason=spam" in alarm and "forced_by=gtube" in alarm


async def test_a_high_score_is_refused_at_the_quarantine_threshold(tmp_path: Path, tls: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # The site lowers the thresholds and weighs a shipped rule up: a capitals subject alone reaches quarantine.
    local = tmp_path / "gw" / "local.d"
    local.mkdir(parents=True)
    (local / "scores.toml").write_text("[actions]\nquarantine = 7.0\nreject = 20.0\n"
                                       "[symbols.SUBJECT_ALL_CAPS]\nweight = 8.0\n")
    async with RelayWorld.start(tmp_path / "gw", tls) as world:
        code, text = await world.send(CLEAN.replace(b"minutes of the meeting", b"MINUTES OF THE MEETING"))
        assert code == 554 and "looks like spam (score " in text and "limit 7.0)" in text, text
        assert world.spool_ids() == []
        assert any("reason=spam" in a and "SUBJECT_ALL_CAPS" in a for a in alarms(caplog))
        code, _ = await world.send(CLEAN)  # the same message without the rule's hit leaves
        assert code == 250


async def test_a_postmaster_without_domain_is_no_outbound_recipient(world: RelayWorld) -> None:
    smtp = await world.connect()
    try:
        await smtp.ehlo()
        await smtp.mail("alice@example.test")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await smtp.rcpt("Postmaster")
        assert refused.value.code == 550
    finally:
        await smtp.quit()


async def test_an_engine_down_gives_451_and_nothing_unscanned_leaves(tmp_path: Path, tls: Path) -> None:
    # A real ClamAV engine that does not answer (no clamd on that socket), required as configured engines are.
    clamav = 'enabled = true\nsocket = "/nonexistent/clamd.ctl"\nconnect_timeout = 1.0'
    async with RelayWorld.start(tmp_path / "gw", tls, clamav=clamav) as world:
        code, text = await world.send(CLEAN)
        assert code == 451 and "could not be scanned" in text, text
        assert world.spool_ids() == []


async def test_the_internal_relay_client_trusts_only_the_gateway_roles_certificate(tmp_path: Path, tls: Path) -> None:
    from mailbastion.apps.gateway import build_relay
    from mailbastion.core.outcome import Deferred, Delivered
    from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
    from mailbastion.delivery.relay_client import relay_agent_from_settings
    from mailbastion.dns.resolver import DnsResolver
    from mailbastion.tls_policy import server_context

    async with RelayWorld.start(tmp_path / "gw", tls) as world:
        resolver = DnsResolver(["127.0.0.1"], port=9, timeout=1)
        request = DeliveryRequest("", "alice@example.test", (DeliveryRecipient("bob@remote.test"),), CLEAN)
        agent = relay_agent_from_settings(world.settings, resolver)
        out = await agent.deliver(request)
        await agent.close()
        assert isinstance(out["bob@remote.test"], Delivered) and len(world.spool_ids()) == 1
        # A listener of our CA, but with the MDA's certificate: not the gateway role, nothing is sent.
        impostor = build_relay(world.settings, pipeline=world.relay.handler.pipeline, spool=world.spool,
                               tls_context=server_context(tls / "mda.crt", tls / "mda.key", client_ca=tls / "ca.crt"))
        assert impostor is not None
        impostor.settings = world.settings.model_copy(update={"relay_in": world.settings.relay_in.model_copy(
            update={"listen": ["127.0.0.1:0"]})})
        await impostor.start()
        try:
            settings = world.settings.model_copy(update={"relay_in": world.settings.relay_in.model_copy(
                update={"connect": f"127.0.0.1:{impostor.ports[0]}"})})
            agent = relay_agent_from_settings(settings, resolver)
            bob = (await agent.deliver(request))["bob@remote.test"]
            await agent.close()
        finally:
            await impostor.stop(1)
        assert isinstance(bob, Deferred) and bob.reply.status == "4.7.5" and "not 'gateway-link'" in bob.reply.text, bob
        assert len(world.spool_ids()) == 1


async def test_requiretls_and_dsn_parameters_cross_the_relay_hop(world: RelayWorld) -> None:
    from mailbastion.core.outcome import Delivered
    from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
    from mailbastion.delivery.relay_client import relay_agent_from_settings
    from mailbastion.dns.resolver import DnsResolver

    agent = relay_agent_from_settings(world.settings, DnsResolver(["127.0.0.1"], port=9, timeout=1))
    request = DeliveryRequest("", "alice@example.test", (DeliveryRecipient("bob@remote.test", ("FAILURE",),
                                                                           "rfc822;bob@remote.test"),),
                              CLEAN, requiretls=True, dsn_ret="HDRS", dsn_envid="env-42")
    out = await agent.deliver(request)
    await agent.close()
    assert isinstance(out["bob@remote.test"], Delivered), out
    [qid] = world.spool_ids()
    record, _ = world.spool.layout.read(QueueState.INCOMING, qid)
    assert record.requiretls and record.dsn_ret == "HDRS" and record.dsn_envid == "env-42"
    [bob] = record.recipients
    assert bob.notify == ("FAILURE",) and bob.orcpt == "rfc822;bob@remote.test"
