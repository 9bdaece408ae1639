"""The queue manager driving real agents: local mail over LMTP/mutual TLS, remote over SMTP, bounces
re-entering through the spool and leaving by SMTP, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import functools
import time
from collections.abc import Callable
from pathlib import Path

from delivery_servers import ScriptedHandler, Server, start_smtp

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.outcome import Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Action, Verdict
from mailbastion.delivery.dsn import build_dsn
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
from mailbastion.delivery.router import RoutingAgent
from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
from mailbastion.dns.resolver import DnsResolver
from mailbastion.spool.layout import QueueState
from mailbastion.spool.manager import QueueManager
from mailbastion.spool.record import RecipientState
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.writer import Spool

MESSAGE = b"From: alice@remote.example\r\nTo: team@example.org\r\nSubject: flow\r\n\r\nhello\r\n"


async def eventually(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_router_manager_lmtp_smtp_and_dsn(tmp_path: Path, mda: Server, lmtp_agent: LmtpDeliveryAgent) -> None:
    mda.handler.rcpt_replies = {"gone@example.org": "550 5.1.1 <gone@example.org>: user unknown"}
    mda.handler.data_replies = {"full@example.org": "452 4.2.2 <full@example.org>: mailbox full"}
    remote = await start_smtp(ScriptedHandler(lmtp=False), None)
    smtp_agent = SmtpDeliveryAgent(DnsResolver(["127.0.0.1"], port=9, timeout=1), port=25,
                                   relayhost=f"127.0.0.1:{remote.port}", connect_timeout=2, command_timeout=5)
    router = RoutingAgent(is_local_domain=lambda d: d == "example.org", local=lmtp_agent, remote=smtp_agent)
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    qm = QueueManager(spool, router, schedule=RetrySchedule(min_backoff=0.3, max_backoff=0.3),
                      scan_interval=0.05, bounce=functools.partial(build_dsn, reporting_mta="gw.example.org"))
    await qm.start()
    try:
        env = Envelope(sender=parse_address("alice@remote.example"), recipients=tuple(parse_address(a) for a in (
            "bob@example.org", "gone@example.org", "full@example.org", "x@elsewhere.example")))
        qid = await spool.commit(env, MESSAGE, client="198.51.100.7", verdict=Verdict(Action.JUNK, 6.0, ()))
        await eventually(lambda: qid in spool.layout.ids(QueueState.DEFERRED))
        record = spool.layout.load(QueueState.DEFERRED, qid)
        status = {r.address: r.status for r in record.recipients}
        assert status == {"bob@example.org": RecipientState.DELIVERED, "gone@example.org": RecipientState.FAILED,
                          "full@example.org": RecipientState.DEFERRED,
                          "x@elsewhere.example": RecipientState.DELIVERED}
        mda.handler.data_replies = {}  # the mailbox has room again
        await eventually(lambda: spool.layout.ids(QueueState.DEFERRED) == [] and
                         spool.layout.ids(QueueState.INCOMING) == [] and spool.layout.ids(QueueState.ACTIVE) == []
                         and len(remote.handler.received) == 2)
    finally:
        await qm.stop()
        remote.server.close()
    local = [(r.rcpt_tos, r.content) for r in mda.handler.received]
    assert local[0][0] == ["bob@example.org", "full@example.org"] and local[1][0] == ["full@example.org"]
    # an MDA without the link protocol (aiosmtpd here) gets the message unchanged: no header stands in
    assert all(c == MESSAGE for _, c in local)
    outbound, bounce = sorted(remote.handler.received, key=lambda r: r.mail_from != "alice@remote.example")
    assert outbound.rcpt_tos == ["x@elsewhere.example"] and b"X-Mailbastion" not in outbound.content
    assert bounce.mail_from == "<>" and bounce.rcpt_tos == ["alice@remote.example"]
    report = email.message_from_bytes(bounce.content)
    assert report.get_content_type() == "multipart/report"
    blocks = report.get_payload()[1].get_payload()
    assert [b["Final-Recipient"] for b in blocks[1:]] == ["rfc822; gone@example.org"]
    assert blocks[1]["Status"] == "5.1.1"


async def test_router_without_remote_agent_refuses_remote_recipients(mda: Server,
                                                                     lmtp_agent: LmtpDeliveryAgent) -> None:
    router = RoutingAgent(is_local_domain=lambda d: d == "example.org", local=lmtp_agent)
    env = Envelope(sender=None, recipients=(parse_address("a@example.org"), parse_address("b@other.example")))
    request = DeliveryRequest("0123456789ABC00001", "", tuple(DeliveryRecipient(str(a)) for a in env.recipients),
                              b"Subject: x\r\n\r\nx\r\n")
    out = await router.deliver(request)
    assert out["b@other.example"] == Failed(Reply(550, "5.7.1", "relaying to remote domains is not enabled here"))
    assert [r.rcpt_tos for r in mda.handler.received] == [["a@example.org"]]


async def test_everything_builds_from_settings(tmp_path: Path, mda: Server, pki: dict[str, Path]) -> None:
    from mailbastion.config import parse_settings

    settings = parse_settings({
        "server": {"hostname": "gw.example.org", "data_dir": str(tmp_path)},
        "tls": {"ca": str(pki["ca.crt"]), "gateway_client_cert": str(pki["gateway-client.crt"]),
                "gateway_client_key": str(pki["gateway-client.key"])},
        "lmtp": {"connect": f"127.0.0.1:{mda.port}", "timeout": 10},
        "spool": {"dir": "q", "min_free_bytes": 0, "scan_interval_seconds": 0.05, "min_backoff_seconds": 60},
        "delivery": {"relayhost": "127.0.0.1:9"},
        "dns": {"nameservers": ["127.0.0.1"], "port": 9},
    })
    spool = Spool.from_settings(settings)
    lmtp = LmtpDeliveryAgent.from_settings(settings)
    smtp = SmtpDeliveryAgent.from_settings(settings, DnsResolver(settings.dns.nameservers, port=settings.dns.port))
    assert smtp.relay == ("127.0.0.1", 9) and smtp.local_hostname == "gw.example.org"
    qm = QueueManager.from_settings(settings, spool, RoutingAgent(is_local_domain=lambda d: True, local=lmtp,
                                                                  remote=smtp), bounce=lambda *a, **k: None)
    assert spool.root == tmp_path / "q" and qm.schedule.min_backoff == 60
    assert lmtp.local_hostname == "gw.example.org" and lmtp.max_idle >= settings.spool.delivery_concurrency
    await qm.start()
    try:
        await spool.commit(Envelope(sender=None, recipients=(parse_address("a@example.org"),)), MESSAGE, client="c")
        await eventually(lambda: len(mda.handler.received) == 1 and spool.layout.ids(QueueState.ACTIVE) == [])
    finally:
        await qm.stop()
    assert spool.layout.ids(QueueState.INCOMING) == [] and spool.layout.ids(QueueState.DEFERRED) == []
