"""SMTP smuggling: a bare LF or bare CR never ends the data, and no second message can appear."""

from __future__ import annotations

import pytest
from gateway_testkit import Gateway

HEAD = b"From: a@example.org\r\nDate: Sat, 28 Nov 2026 03:00:00 +0000\r\nMessage-ID: <s@x>\r\n\r\nfirst message"
SMUGGLED = (b"MAIL FROM:<admin@example.net>\r\nRCPT TO:<alice@example.net>\r\nDATA\r\n"
            b"From: admin@example.net\r\n\r\nsmuggled\r\n")
VARIANTS = [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\n.\r", b"\r\n.\r", b"\r.\n",
            b"\n\n.\n\n", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n"]


async def _start_data(gateway: Gateway):  # type: ignore[no-untyped-def]
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 250
    assert (await d.cmd("DATA")).code == 354
    return d


@pytest.mark.parametrize("ending", VARIANTS, ids=[repr(v) for v in VARIANTS])
async def test_no_second_message(gateway: Gateway, ending: bytes) -> None:
    d = await _start_data(gateway)
    await d.send(HEAD + ending + SMUGGLED + b"\r\n.\r\n")
    reply = await d.read_reply()
    if b"\x00" in ending:  # not a newline trick, but NUL is refused anywhere in message data
        assert (reply.code, reply.status) == (554, "5.6.0"), reply
    else:
        assert (reply.code, reply.status) == (554, "5.6.11"), reply
    assert gateway.spool.commits == []
    # The session is still in step: the next reply answers the next command, not smuggled ones.
    assert (await d.cmd("NOOP")).code == 250
    assert (await d.cmd("QUIT")).code == 221
    assert gateway.spool.commits == []
    await d.close()


async def test_bare_lf_line_ends_refused(gateway: Gateway) -> None:
    d = await _start_data(gateway)
    await d.send(b"From: a@example.org\nSubject: x\n\nbody\n.\n")
    await d.send(b"\r\n.\r\n")  # the only real end of data
    reply = await d.read_reply()
    assert (reply.code, reply.status) == (554, "5.6.11")
    assert gateway.spool.commits == []
    await d.close()


async def test_session_recovers_after_refusal(gateway: Gateway) -> None:
    d = await _start_data(gateway)
    await d.send(HEAD + b"\n.\n" + b"\r\n.\r\n")
    assert (await d.read_reply()).code == 554
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 250
    assert (await d.message(HEAD + b"\r\n")).code == 250
    assert len(gateway.spool.commits) == 1
    assert gateway.spool.commits[0].message.endswith(b"first message\r\n")
    await d.close()


async def test_bare_lf_in_command_refused(gateway: Gateway) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    r = await d.cmd(b"MAIL FROM:<a@example.org>\nRCPT TO:<alice@example.net>")
    assert r.code == 500
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 503  # no sender was accepted
    await d.close()


async def test_dot_stuffing_is_undone(gateway: Gateway) -> None:
    d = await _start_data(gateway)
    await d.send(HEAD + b"\r\n..leading dot\r\n...\r\n.\r\n")
    assert (await d.read_reply()).code == 250
    assert gateway.spool.commits[0].message.endswith(b"first message\r\n.leading dot\r\n..\r\n")
    await d.close()
