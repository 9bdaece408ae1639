"""RFC 5321 conformance of the MX gateway (issue 8 item 7) with the real GatewayHandler."""

from __future__ import annotations

import struct

import pytest
from gateway_testkit import MESSAGE, GatewayFactory

from mailbastion.testing.smtp_dialogue import SmtpDialogue


@pytest.mark.parametrize("path", ["<Postmaster>", "<postmaster>", "<POSTMASTER>"])
async def test_postmaster_without_domain_is_our_postmaster(gateway_factory: GatewayFactory, path: str) -> None:
    gw = await gateway_factory()
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    await d.cmd("MAIL FROM:<sender@example.org>")
    r = await d.cmd(f"RCPT TO:{path}")
    assert r.code == 250, r
    assert (await d.message(MESSAGE)).code == 250
    (commit,) = gw.spool.commits
    assert [str(a) for a in commit.envelope.recipients] == ["postmaster@example.net"]  # our domain above mx.example.net
    assert b"for <postmaster@example.net>;" in commit.message
    await d.close()


async def test_postmaster_domain_setting(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"postmaster_domain": "example.com"})
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    await d.cmd("MAIL FROM:<>")
    assert (await d.cmd("RCPT TO:<Postmaster>")).code == 250
    assert (await d.message(MESSAGE)).code == 250
    assert [str(a) for a in gw.spool.commits[0].envelope.recipients] == ["postmaster@example.com"]
    await d.close()


async def test_150_pipelined_recipients_keep_the_transaction(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory()  # max_recipients 100, max_errors 10: the defaults
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    rcpts = [b"RCPT TO:<alice+%d@example.net>\r\n" % i for i in range(150)]
    await d.send(b"MAIL FROM:<sender@example.org>\r\n" + b"".join(rcpts) + b"DATA\r\n")
    replies = [await d.read_reply() for _ in range(152)]
    assert replies[0].code == 250
    assert [r.code for r in replies[1:101]] == [250] * 100
    assert [(r.code, r.status) for r in replies[101:151]] == [(452, "4.5.3")] * 50  # RFC 5321 §4.5.3.1.10
    assert replies[151].code == 354
    await d.send(MESSAGE + b".\r\n")
    assert (await d.read_reply()).code == 250
    assert len(gw.spool.commits[0].envelope.recipients) == 100
    await d.close()


async def test_early_talker_refused_by_the_gateway(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"greet_pause": 0.5})
    d = await gw.connect(read_greeting=False, preamble=b"EHLO bot.example\r\nMAIL FROM:<spam@example.org>\r\n")
    r = await d.read_reply()
    assert (r.code, r.status, r.lines[0]) == (554, "5.5.0", "5.5.0 Error: SMTP protocol synchronization")
    assert await d.is_closed()
    assert gw.spool.commits == []


async def test_proxy_v2_local_keeps_the_socket_peer(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"proxy_protocol": True, "proxy_protocol_from": ["127.0.0.1"]})
    header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + struct.pack("!H", 0)  # LOCAL: a health check
    d = await gw.connect(preamble=header)
    assert d.greeting is not None and d.greeting.code == 220
    r = await d.cmd("EHLO mail.example.org")
    assert r.code == 250
    await d.close()


async def test_proxy_header_arriving_in_pieces(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"proxy_protocol": True, "proxy_protocol_from": ["127.0.0.1"]})
    d = await gw.connect(read_greeting=False, preamble=b"PROXY TCP4 198.51.100.")
    await d.send(b"9 192.0.2.1 40000 25\r\n")
    d.greeting = await d.read_reply()
    assert d.greeting.code == 220
    await d.cmd("EHLO mail.example.org")
    await d.cmd("MAIL FROM:<sender@example.org>")
    await d.cmd("RCPT TO:<alice@example.net>")
    assert (await d.message(MESSAGE)).code == 250
    assert gw.spool.commits[0].client == "198.51.100.9"
    await d.close()


async def test_proxy_header_with_smtp_behind_it_is_an_early_talker(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"proxy_protocol": True, "proxy_protocol_from": ["127.0.0.1"],
                                     "greet_pause": 0.3})
    d = await SmtpDialogue.open("127.0.0.1", gw.port, read_greeting=False,
                                preamble=b"PROXY TCP4 198.51.100.9 192.0.2.1 40000 25\r\nEHLO bot.example\r\n")
    assert (await d.read_reply()).code == 554  # the client behind the balancer talked first
    assert await d.is_closed()
