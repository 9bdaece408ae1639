"""LMTP to the MDA over mutual TLS (implicit, from the first byte), one outcome per recipient."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from delivery_servers import ScriptedHandler, Server, gateway_client_context, start_lmtp

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.delivery.agent import Delivered, PermFailed, TempFailed
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent, prepare_message
from mailbastion.pki import make_deployment_pki
from mailbastion.smtp.tls import server_context
from mailbastion.spool.record import QueueRecord

MESSAGE = b"From: alice@example.org\r\nSubject: hi\r\n\r\nline one\r\n.starts with a dot\r\n"


def record(*rcpts: str, sender: str | None = "alice@example.org", junk: bool = False) -> QueueRecord:
    env = Envelope(sender=parse_address(sender) if sender else None, recipients=tuple(parse_address(r) for r in rcpts))
    return QueueRecord.new("0123456789ABC0FFEE", env, arrival=0.0, client="c", size=len(MESSAGE), junk=junk)


async def test_one_outcome_per_recipient_after_data(mda: Server, lmtp_agent: LmtpDeliveryAgent) -> None:
    h = mda.handler
    h.rcpt_replies = {"unknown@example.org": "550 5.1.1 <unknown@example.org>: user unknown",
                      "later@example.org": "450 4.2.1 try later"}
    h.data_replies = {"full@example.org": "452 4.2.2 <full@example.org>: mailbox full",
                      "bad@example.org": "554 5.6.0 refused"}
    rcpts = ("ok@example.org", "unknown@example.org", "later@example.org", "full@example.org", "bad@example.org",
             "ok2@example.org")
    out = await lmtp_agent.deliver(record(*rcpts), MESSAGE)
    assert set(out) == set(rcpts)
    assert out["ok@example.org"] == Delivered("250 2.0.0 <ok@example.org> delivered")
    assert out["ok2@example.org"] == Delivered("250 2.0.0 <ok2@example.org> delivered")
    assert out["unknown@example.org"] == PermFailed("550 5.1.1 <unknown@example.org>: user unknown")
    assert out["later@example.org"] == TempFailed("450 4.2.1 try later")
    assert out["full@example.org"] == TempFailed("452 4.2.2 <full@example.org>: mailbox full")
    assert out["bad@example.org"] == PermFailed("554 5.6.0 refused")
    [got] = h.received
    assert got.mail_from == "alice@example.org"
    assert got.rcpt_tos == ["ok@example.org", "full@example.org", "bad@example.org", "ok2@example.org"]
    assert got.peer_cert_cn == "gateway"  # we presented the gateway client certificate
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")
    assert got.content.startswith(b"X-Mailbastion-Queue-Id: 0123456789ABC0FFEE\r\n")
    assert b"X-Mailbastion-Junk" not in got.content
    assert got.content.endswith(MESSAGE)  # dot-stuffing undone by the server: bytes arrive unchanged


async def test_junk_flag_adds_the_junk_header_and_null_sender_is_sent(mda: Server,
                                                                       lmtp_agent: LmtpDeliveryAgent) -> None:
    out = await lmtp_agent.deliver(record("ok@example.org", sender=None, junk=True), MESSAGE)
    assert isinstance(out["ok@example.org"], Delivered)
    [got] = mda.handler.received
    assert got.mail_from == "<>"  # aiosmtpd reports the null reverse-path as "<>"
    assert got.content.startswith(b"X-Mailbastion-Queue-Id: 0123456789ABC0FFEE\r\nX-Mailbastion-Junk: yes\r\n")


def test_prepare_message_normalises_line_ends_and_stuffs_dots() -> None:
    data = prepare_message(record("a@example.org"), b"Subject: x\n\n.\n..two\nlast")
    assert data == (b"X-Mailbastion-Queue-Id: 0123456789ABC0FFEE\r\nSubject: x\r\n\r\n..\r\n...two\r\nlast\r\n.\r\n")


async def test_unreachable_mda_is_a_temporary_failure_for_everyone(pki: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    agent = LmtpDeliveryAgent("127.0.0.1", port, ssl_context=gateway_client_context(pki), connect_timeout=2)
    out = await agent.deliver(record("a@example.org", "b@example.org"), MESSAGE)
    assert set(out) == {"a@example.org", "b@example.org"}
    assert all(isinstance(o, TempFailed) and o.error.startswith("4.4.2") for o in out.values())


async def test_plain_text_mda_is_refused_no_mail_crosses_in_clear(pki: dict[str, Path]) -> None:
    server = await start_lmtp(ScriptedHandler(), None)
    try:
        agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki),
                                  connect_timeout=2, timeout=2)
        out = await agent.deliver(record("a@example.org"), MESSAGE)
    finally:
        server.server.close()
    assert isinstance(out["a@example.org"], TempFailed)
    assert server.handler.received == []


async def test_mda_with_a_certificate_from_another_ca_is_refused(pki: dict[str, Path], tmp_path: Path) -> None:
    rogue = make_deployment_pki(tmp_path / "rogue", "localhost")
    server = await start_lmtp(ScriptedHandler(), server_context(rogue["mda.crt"], rogue["mda.key"]))
    try:
        agent = LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=gateway_client_context(pki),
                                  connect_timeout=2, timeout=2)
        out = await agent.deliver(record("a@example.org"), MESSAGE)
    finally:
        server.server.close()
    assert isinstance(out["a@example.org"], TempFailed) and "CERTIFICATE_VERIFY_FAILED" in out["a@example.org"].error
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

    ctx = server_context(pki["mda.crt"], pki["mda.key"], client_ca=pki["ca.crt"])
    server = await asyncio.start_server(half, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        agent = LmtpDeliveryAgent("127.0.0.1", port, ssl_context=gateway_client_context(pki), timeout=3)
        out = await agent.deliver(record("a@example.org", "b@example.org"), MESSAGE)
    finally:
        server.close()
    assert out["a@example.org"] == Delivered("250 2.0.0 first ok")
    assert isinstance(out["b@example.org"], TempFailed)
