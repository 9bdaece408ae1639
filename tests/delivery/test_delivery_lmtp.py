"""LMTP to the MDA over mutual TLS (implicit, from the first byte), one outcome per recipient, the link
protocol (XQUEUEID, XFOLDER) when the MDA offers XMAILBASTION, and the fast retry of a refused MDA."""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from delivery_servers import LineServer, ScriptedHandler, Server, gateway_client_context, start_lmtp

from mailbastion.core.outcome import Deferred, Delivered, Failed, Handoff
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Folder
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent, prepare_message
from mailbastion.pki import make_deployment_pki
from mailbastion.smtp.data import crlf_message
from mailbastion.tls_policy import server_context

MESSAGE = b"From: alice@example.org\r\nSubject: hi\r\n\r\nline one\r\n.starts with a dot\r\n"
QID = "0123456789ABC0FFEE"


def request(*rcpts: str, sender: str = "alice@example.org", folder: Folder = Folder.INBOX) -> DeliveryRequest:
    return DeliveryRequest(QID, sender, tuple(DeliveryRecipient(r) for r in rcpts), MESSAGE, folder=folder)


def link_mda(pki: dict[str, Path], handler: ScriptedHandler, **kw: object) -> LineServer:
    return LineServer(handler, extensions=("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8",
                                           "XMAILBASTION"), **kw)  # type: ignore[arg-type]


def mda_context(pki: dict[str, Path]):  # type: ignore[no-untyped-def]
    return server_context(pki["mda.crt"], pki["mda.key"], client_ca=pki["ca.crt"])


async def test_one_outcome_per_recipient_after_data(mda: Server, lmtp_agent: LmtpDeliveryAgent) -> None:
    h = mda.handler
    h.rcpt_replies = {"unknown@example.org": "550 5.1.1 <unknown@example.org>: user unknown",
                      "later@example.org": "450 4.2.1 try later"}
    h.data_replies = {"full@example.org": "452 4.2.2 <full@example.org>: mailbox full",
                      "bad@example.org": "554 5.6.0 refused"}
    rcpts = ("ok@example.org", "unknown@example.org", "later@example.org", "full@example.org", "bad@example.org",
             "ok2@example.org")
    out = await lmtp_agent.deliver(request(*rcpts))
    assert set(out) == set(rcpts)
    here = "mda"  # named by its certificate name, never by its (inner) address
    assert out["ok@example.org"] == Delivered(Reply(250, "2.0.0", "<ok@example.org> delivered"), here,
                                              Handoff.DELIVERED)
    assert out["ok2@example.org"] == Delivered(Reply(250, "2.0.0", "<ok2@example.org> delivered"), here)
    assert out["unknown@example.org"] == Failed(Reply(550, "5.1.1", "<unknown@example.org>: user unknown"), here)
    assert out["later@example.org"] == Deferred(Reply(450, "4.2.1", "try later"), here)
    assert out["full@example.org"] == Deferred(Reply(452, "4.2.2", "<full@example.org>: mailbox full"), here)
    assert out["bad@example.org"] == Failed(Reply(554, "5.6.0", "refused"), here)
    [got] = h.received
    assert got.mail_from == "alice@example.org"
    assert got.rcpt_tos == ["ok@example.org", "full@example.org", "bad@example.org", "ok2@example.org"]
    assert got.peer_cert_cn == "gateway"  # we presented the gateway client certificate
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")
    assert got.content == MESSAGE  # nothing injected; dot-stuffing undone by the server: bytes arrive unchanged


async def test_an_mda_without_the_link_protocol_gets_no_parameters_and_no_header(
        mda: Server, lmtp_agent: LmtpDeliveryAgent, caplog: pytest.LogCaptureFixture) -> None:
    out = await lmtp_agent.deliver(request("ok@example.org", sender="", folder=Folder.JUNK))
    assert isinstance(out["ok@example.org"], Delivered)
    [got] = mda.handler.received
    assert got.mail_from == "<>"  # aiosmtpd reports the null reverse-path as "<>"
    assert got.content == MESSAGE  # nothing stands in for XFOLDER: the lost Junk verdict is logged
    assert "Junk verdict cannot reach it" in caplog.text


async def test_the_link_protocol_carries_queue_id_and_folder_as_mail_parameters(pki: dict[str, Path]) -> None:
    handler = ScriptedHandler()
    server = await link_mda(pki, handler).start(mda_context(pki))
    agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki), timeout=10)
    try:
        junk = await agent.deliver(request("a@example.org", folder=Folder.JUNK))
        inbox = await agent.deliver(request("b@example.org", "c@example.org"))
        bounce = await agent.deliver(replace(request("a@example.org"), bounce_of=("erin@example.org", "o,dd@x.test")))
    finally:
        await agent.close()
        server.close()
    assert isinstance(junk["a@example.org"], Delivered) and isinstance(inbox["c@example.org"], Delivered)
    assert isinstance(bounce["a@example.org"], Delivered)
    first, second, third = handler.received
    assert third.mail_params == [f"XQUEUEID={QID}", "XFOLDER=INBOX", "XBOUNCEOF=erin@example.org,o+2Cdd@x.test"]
    assert first.mail_params == [f"XQUEUEID={QID}", "XFOLDER=Junk"]
    assert second.mail_params == [f"XQUEUEID={QID}", "XFOLDER=INBOX"] and second.rcpt_tos == ["b@example.org",
                                                                                               "c@example.org"]
    assert first.content == second.content == MESSAGE  # no X-Mailbastion-* header in the message any more
    assert agent.connections_opened == 1


async def test_no_link_parameters_to_an_mda_that_does_not_offer_them(pki: dict[str, Path]) -> None:
    handler = ScriptedHandler()
    server = await LineServer(handler).start(mda_context(pki))  # no XMAILBASTION advertised
    agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki), timeout=10)
    try:
        out = await agent.deliver(request("a@example.org", folder=Folder.JUNK))
    finally:
        await agent.close()
        server.close()
    assert isinstance(out["a@example.org"], Delivered)
    assert handler.received[0].mail_params == []


def test_prepare_message_normalises_line_ends_and_stuffs_dots() -> None:
    assert prepare_message(b"Subject: x\n\n.\n..two\nlast") == b"Subject: x\r\n\r\n..\r\n...two\r\nlast\r\n.\r\n"
    assert prepare_message(b".first line\r\n") == b"..first line\r\n.\r\n"


async def test_a_refused_mda_is_a_link_failure_for_everyone(pki: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    agent = LmtpDeliveryAgent("127.0.0.1", port, ssl_context=gateway_client_context(pki), connect_timeout=2)
    out = await agent.deliver(request("a@example.org", "b@example.org"))
    assert set(out) == {"a@example.org", "b@example.org"}
    for o in out.values():
        assert isinstance(o, Deferred) and o.link_down and o.reply.code == 451 and o.reply.status == "4.4.2"


async def test_an_mda_saying_421_at_the_greeting_is_restarting(pki: dict[str, Path]) -> None:
    server = await LineServer(ScriptedHandler(), greeting=b"421 4.3.2 shutting down\r\n").start(mda_context(pki))
    agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki), timeout=3)
    try:
        out = await agent.deliver(request("a@example.org"))
    finally:
        server.close()
    assert out["a@example.org"] == Deferred(Reply(421, "4.3.2", "shutting down"), "mda", link_down=True)


async def test_plain_text_mda_is_refused_no_mail_crosses_in_clear(pki: dict[str, Path]) -> None:
    server = await start_lmtp(ScriptedHandler(), None)
    try:
        agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki),
                                  connect_timeout=2, timeout=2)
        out = await agent.deliver(request("a@example.org"))
    finally:
        server.server.close()
    outcome = out["a@example.org"]
    assert isinstance(outcome, Deferred) and not outcome.link_down  # a misconfiguration: the normal back-off
    assert server.handler.received == []


async def test_mda_with_a_certificate_from_another_ca_is_refused(pki: dict[str, Path], tmp_path: Path) -> None:
    rogue = make_deployment_pki(tmp_path / "rogue", "localhost")
    server = await start_lmtp(ScriptedHandler(), server_context(rogue["mda.crt"], rogue["mda.key"]))
    try:
        agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki),
                                  connect_timeout=2, timeout=2)
        out = await agent.deliver(request("a@example.org"))
    finally:
        server.server.close()
    outcome = out["a@example.org"]
    assert isinstance(outcome, Deferred) and "CERTIFICATE_VERIFY_FAILED" in outcome.reply.text
    assert not outcome.link_down
    assert server.handler.received == []


async def test_mda_closing_mid_reply_defers_the_unanswered(pki: dict[str, Path]) -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mda LMTP\r\n")
        for reply in (b"250-mda\r\n250 8BITMIME\r\n", b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
            await reader.readline()
            writer.write(reply)
        while (await reader.readline()) != b".\r\n":
            pass
        writer.write(b"250 2.0.0 first ok\r\n")  # then hang up before the second reply
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half, "127.0.0.1", 0, ssl=mda_context(pki))
    port = server.sockets[0].getsockname()[1]
    try:
        agent = LmtpDeliveryAgent("127.0.0.1", port, ssl_context=gateway_client_context(pki), timeout=3)
        out = await agent.deliver(request("a@example.org", "b@example.org"))
    finally:
        server.close()
    assert out["a@example.org"] == Delivered(Reply(250, "2.0.0", "first ok"), "mda")
    b = out["b@example.org"]
    assert isinstance(b, Deferred) and b.link_down  # the MDA went away: retried within seconds


async def test_wait_ready_waits_for_the_mda_and_keeps_the_session(pki: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agent = LmtpDeliveryAgent("127.0.0.1", port, ssl_context=gateway_client_context(pki), connect_timeout=2)
    assert await agent.wait_ready(0.3) is False  # bounded: nobody listens
    handler = ScriptedHandler()
    server = LineServer(handler)

    async def start_late() -> None:
        await asyncio.sleep(0.3)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", port, ssl=mda_context(pki))

    late = asyncio.ensure_future(start_late())
    try:
        assert await agent.wait_ready(20) is True
        out = await agent.deliver(request("a@example.org"))
        assert isinstance(out["a@example.org"], Delivered)
        assert agent.connections_opened == 1  # the session that answered carried the first delivery
    finally:
        await late
        await agent.close()
        server.close()


async def test_pipelined_transaction_gives_the_same_outcomes_and_keeps_the_session(pki: dict[str, Path]) -> None:
    """An MDA offering PIPELINING gets MAIL, every RCPT and DATA in one write; the outcomes are those of the
    step-by-step exchange, a transaction with every recipient refused sends no data (DATA gets 503) and
    leaves the session clean for the next one."""
    handler = ScriptedHandler(rcpt_replies={"unknown@example.org": "550 5.1.1 user unknown",
                                            "later@example.org": "450 4.2.1 try later"},
                              data_replies={"full@example.org": "452 4.2.2 mailbox full"})
    server = await link_mda(pki, handler).start(mda_context(pki))
    agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki), timeout=10)
    try:
        mixed = await agent.deliver(request("ok@example.org", "unknown@example.org", "later@example.org",
                                            "full@example.org"))
        refused = await agent.deliver(request("unknown@example.org", "later@example.org"))
        again = await agent.deliver(request("ok2@example.org"))
    finally:
        await agent.close()
        server.close()
    assert mixed["ok@example.org"] == Delivered(Reply(250, "2.0.0", "<ok@example.org> delivered"), "mda")
    assert mixed["unknown@example.org"] == Failed(Reply(550, "5.1.1", "user unknown"), "mda")
    assert mixed["later@example.org"] == Deferred(Reply(450, "4.2.1", "try later"), "mda")
    assert mixed["full@example.org"] == Deferred(Reply(452, "4.2.2", "mailbox full"), "mda")
    assert refused == {"unknown@example.org": Failed(Reply(550, "5.1.1", "user unknown"), "mda"),
                       "later@example.org": Deferred(Reply(450, "4.2.1", "try later"), "mda")}
    assert isinstance(again["ok2@example.org"], Delivered)
    assert [r.rcpt_tos for r in handler.received] == [["ok@example.org", "full@example.org"], ["ok2@example.org"]]
    assert all(r.content == MESSAGE for r in handler.received)
    assert agent.connections_opened == 1


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b"a", b".", b"\r\r\n", b"\r\n\n"]), max_size=30).map(b"".join))
def test_line_ends_are_normalised_exactly_when_a_bare_lf_is_there(raw: bytes) -> None:
    """crlf_message decides with one pass over CRs and LFs; its result is that of counting LFs apart."""
    expected = raw if raw.count(b"\n") == raw.count(b"\r\n") else re.sub(rb"\r?\n", b"\r\n", raw)
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert crlf_message(raw) == expected
