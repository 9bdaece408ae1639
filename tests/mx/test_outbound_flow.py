"""Outbound mail end to end through a real `mailbastion serve` (the all-in-one process: internal and
gateway halves over the loopback mutual-TLS relay hop): the internal host's relay client
(`delivery/relay_client.py`) hands a message to the gateway's relay listener, which checks it, queues it
and delivers it to a remote MX (an aiosmtpd sink on 127.0.0.N) found through the loopback DNS server.
Failures come back to our sender as RFC 3464 DSNs in her Maildir; a remote's later bounce is matched to
our queue entry; a TLS-RPT report of a finished day is produced at start and delivered through our spool."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from email.utils import formatdate

import aiosmtplib
import pytest
from mx_world import SinkThread

from mailbastion.config import load_settings
from mailbastion.core.outcome import Delivered, DeliveryOutcome, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.delivery.relay_client import relay_agent_from_settings
from mailbastion.dns.resolver import DnsResolver
from mailbastion.outbound.requirement import ReportPolicy
from mailbastion.outbound.tlsrpt_store import TlsRptStore
from mailbastion.spam.rules import GTUBE
from mailbastion.testing.av import WRAPPINGS
from mailbastion.testing.certificates import CertAuthority
from mailbastion.testing.clamd import EICAR
from mailbastion.testing.deployment import Deployment, free_port
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.mx_sink import MxSink
from mailbastion.tls_policy import client_context

ALICE = "alice@example.test"


class Outbound:
    def __init__(self, d: Deployment, sinks: SinkThread, dns: DnsTestServer, port: int,
                 mx: dict[str, MxSink]) -> None:
        self.d, self.sinks, self.dns, self.port, self.mx = d, sinks, dns, port, mx

    def relay(self, rcpts: list[str], message: bytes, *, sender: str = ALICE, envid: str | None = None,
              cert: str = "internal") -> dict[str, DeliveryOutcome]:
        """What the internal host does with a message a user submitted: relay it to the gateway."""
        settings = load_settings(self.d.config)
        agent = relay_agent_from_settings(settings, DnsResolver([self.dns.host], port=self.dns.port, timeout=2))
        request = DeliveryRequest("", sender, tuple(DeliveryRecipient(r) for r in rcpts), message, dsn_envid=envid)

        async def go() -> dict[str, DeliveryOutcome]:
            try:
                return await agent.deliver(request)
            finally:
                await agent.close()

        return asyncio.run(go())

    def wait_log(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.d.log())
            if found:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"no {pattern!r} in the log:\n{self.d.log()[-4000:]}")


def message(subject: str, *, to: str = "bob@remote.test", body: bytes = b"Hello Bob,\r\nsee you tomorrow.\r\n",
            mid: str | None = None) -> bytes:
    mid = mid or f"<{abs(hash(subject))}.{time.time_ns()}@example.test>"
    return (f"From: Alice <{ALICE}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"Date: {formatdate()}\r\n\r\n").encode() + body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outbound]:
    tmp = tmp_path_factory.mktemp("outbound-flow")
    ca = CertAuthority.create(tmp / "remote-ca", "Remote MX CA")  # not trusted by us: opportunistic TLS
    port = free_port()
    hosts = {"mx.remote.test": "127.0.0.2", "mx.reuse.test": "127.0.0.3", "mx.rpt.test": "127.0.0.4"}
    with DnsTestServer() as dns, SinkThread() as sinks:
        mx = {h: sinks.start(h, ip, port, ca.issue(tmp / h, [h])) for h, ip in hosts.items()}
        for host, ip in hosts.items():
            domain = host.removeprefix("mx.")
            dns.add(domain, "MX", f"10 {host}")
            dns.add(host, "A", ip)
        dns.add("nullmx.test", "MX", "0 .")
        dns.add("_smtp._tls.rpt.test", "TXT", "v=TLSRPTv1; rua=mailto:tlsrpt@rpt.test")
        d = Deployment(tmp / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("relay_in", "listen"): f'["127.0.0.1:{free_port()}"]',
            ("delivery", "remote_port"): str(port), ("delivery", "connection_cache_idle_seconds"): "60",
        })
        d.init()
        d.mb("account", "add", ALICE, "--password-stdin", input="Correct-Horse-Battery-9\n")
        # A finished day with a recorded session to rpt.test, not reported yet: the gateway sends it at start.
        yesterday = time.time() - 86400
        TlsRptStore(d.root / "tlsrpt.db", clock=lambda: yesterday).record(ReportPolicy("no-policy-found", "rpt.test"),
                                                                           result_type=None)
        d.start()
        try:
            yield Outbound(d, sinks, dns, port, mx)
        finally:
            d.stop()


def test_a_relayed_message_reaches_the_remote_mx(world: Outbound) -> None:
    sink = world.mx["mx.remote.test"]
    before = len(sink.received)
    msg = message("the report")
    out = world.relay(["bob@remote.test"], msg)
    bob = out["bob@remote.test"]
    assert isinstance(bob, Delivered) and "queued as" in bob.reply.text, bob  # the gateway's 250
    world.sinks.wait(lambda: len(sink.received) > before, what="delivery to mx.remote.test")
    got = sink.received[-1]
    assert got.mail_from == ALICE and got.rcpt_tos == ["bob@remote.test"]
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")  # opportunistic: the remote's CA is unknown to us
    head = got.content.split(b"\r\n\r\n", 1)[0].decode()
    assert "Received: from mail.example.test" in head and "with ESMTPS" in head  # the relay hop's trace
    assert got.content.replace(b"\r\n", b"\n").endswith(msg.replace(b"\r\n", b"\n"))


def test_two_messages_to_one_mx_reuse_one_connection(world: Outbound) -> None:
    sink = world.mx["mx.reuse.test"]
    for i in range(2):
        out = world.relay(["carol@reuse.test"], message(f"reuse {i}", to="carol@reuse.test"))
        assert isinstance(out["carol@reuse.test"], Delivered)
        world.sinks.wait(lambda n=i: len(sink.received) == n + 1, what=f"message {i} at mx.reuse.test")
    assert sink.connections == 1, sink.connections


def test_relaying_without_the_internal_certificate_is_refused(world: Outbound) -> None:
    settings = load_settings(world.d.config)
    port = int(settings.relay_in.listen[0].rsplit(":", 1)[1])
    tls = world.d.root / "tls"

    async def attempt(cert: str | None) -> str:
        ctx = client_context(ca=tls / "ca.crt", check_hostname=False,
                             cert=tls / f"{cert}.crt" if cert else None, key=tls / f"{cert}.key" if cert else None)
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=True, tls_context=ctx, timeout=30)
        try:
            await smtp.connect()
            await smtp.ehlo()
            await smtp.sendmail(ALICE, ["bob@remote.test"], message("sneaky"))
        except aiosmtplib.SMTPResponseException as exc:
            return f"{exc.code} {exc.message}"
        except (aiosmtplib.SMTPException, OSError) as exc:
            return f"handshake: {exc}"
        return "accepted"

    assert asyncio.run(attempt(None)).startswith("handshake")
    gateway = asyncio.run(attempt("gateway-client"))
    assert gateway.startswith("554") and "Relaying denied" in gateway
    # The MX listener relays for nobody.
    with pytest.raises(Exception) as refused:
        world.d.send(ALICE, ["bob@remote.test"], message("via the MX"))
    assert "550" in str(refused.value) and "Relaying denied" in str(refused.value)
    sink = world.mx["mx.remote.test"]
    before = len(sink.received)
    assert world.relay(["bob@remote.test"], message("ok"))["bob@remote.test"].reply.code == 250  # control
    world.sinks.wait(lambda: len(sink.received) > before, what="the control message")


def test_eicar_and_gtube_outbound_are_refused_with_a_clear_reply(world: Outbound) -> None:
    sink = world.mx["mx.remote.test"]
    eicar = world.relay(["bob@remote.test"], WRAPPINGS["plain_attachment"](EICAR, "eicar.com"))["bob@remote.test"]
    assert isinstance(eicar, Failed) and eicar.reply.code == 554 and "malware detected" in eicar.reply.text
    gtube = world.relay(["bob@remote.test"], message("offer", body=GTUBE + b"\r\n"))["bob@remote.test"]
    assert isinstance(gtube, Failed) and gtube.reply.code == 554 and "looks like spam" in gtube.reply.text
    world.wait_log(r"outbound\.alarm reason=malware sender=alice@example\.test")
    world.wait_log(r"outbound\.alarm reason=spam .*forced_by=gtube")
    # Refused at the end of DATA: never committed, so never delivered (a 554 is given only before the spool).
    assert not [m for m in sink.received if EICAR in m.content or GTUBE in m.content]


def test_null_mx_fails_with_a_dsn_to_our_sender(world: Outbound) -> None:
    before = len(world.d.delivered(ALICE))
    out = world.relay(["someone@nullmx.test"], message("to a domain without mail"))
    assert out["someone@nullmx.test"].reply.code == 250  # accepted by the gateway; the failure comes later
    dsn = world.d.wait_delivered(ALICE, before + 1)[-1].decode(errors="replace")
    assert "multipart/report" in dsn and "report-type=delivery-status" in dsn
    assert "Final-Recipient: rfc822; someone@nullmx.test" in dsn and "Status: 5.1.10" in dsn


def test_a_5xx_from_the_remote_gives_a_dsn_to_our_sender(world: Outbound) -> None:
    sink = world.mx["mx.remote.test"]
    sink.rcpt_replies["nobody@remote.test"] = "550 5.1.1 <nobody@remote.test>: user unknown"
    before = len(world.d.delivered(ALICE))
    out = world.relay(["nobody@remote.test"], message("to nobody", to="nobody@remote.test"))
    assert out["nobody@remote.test"].reply.code == 250
    dsn = world.d.wait_delivered(ALICE, before + 1)[-1].decode(errors="replace")
    assert "Final-Recipient: rfc822; nobody@remote.test" in dsn and "Status: 5.1.1" in dsn
    assert "Remote-MTA: dns; mx.remote.test" in dsn and "user unknown" in dsn


def test_a_remote_bounce_is_matched_to_our_queue_entry(world: Outbound) -> None:
    sink = world.mx["mx.remote.test"]
    before = len(sink.received)
    mid = f"<bounce-me.{time.time_ns()}@example.test>"
    out = world.relay(["dave@remote.test"], message("later bounced", to="dave@remote.test", mid=mid))
    queue_id = out["dave@remote.test"].reply.text.rsplit(" ", 1)[1]
    world.sinks.wait(lambda: len(sink.received) > before, what="delivery of the message to bounce")
    # The remote accepted it, then bounces it to our MX, quoting our header.
    dsn = (f"From: MAILER-DAEMON@mx.remote.test\r\nTo: {ALICE}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           f"Message-ID: <dsn.{time.time_ns()}@mx.remote.test>\r\nDate: {formatdate()}\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
           "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
           "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n"
           "Final-Recipient: rfc822; dave@remote.test\r\nAction: failed\r\nStatus: 5.2.2\r\n"
           "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\r\n"
           f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {ALICE}\r\nTo: dave@remote.test\r\n"
           f"Message-ID: {mid}\r\n\r\n--B--\r\n").encode()
    world.d.send("", [ALICE], dsn, helo="mx.remote.test")
    line = world.wait_log(rf"outbound\.bounce queue_id={queue_id} [^\n]*")
    assert "recipient=dave@remote.test action=failed status=5.2.2" in line.group(0)


def test_a_tls_rpt_report_is_produced_and_delivered_through_our_spool(world: Outbound) -> None:
    sink = world.mx["mx.rpt.test"]
    world.sinks.wait(lambda: len(sink.received) >= 1, what="the TLS-RPT report at mx.rpt.test")
    report = sink.received[0]
    assert report.rcpt_tos == ["tlsrpt@rpt.test"]
    assert b'report-type="tlsrpt"' in report.content and b"application/tlsrpt+gzip" in report.content
    assert b"TLS-Report-Domain: rpt.test" in report.content
    assert "client=tls-rpt" in world.d.log()  # committed to our spool like any message
