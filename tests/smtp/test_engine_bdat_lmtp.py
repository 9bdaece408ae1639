"""CHUNKING/BDAT (RFC 3030) and LMTP's one reply per recipient (RFC 2033 §4.2), over real sockets."""

from __future__ import annotations

from engine_testkit import ehlo_mail_rcpt, start_engine

from mailbastion.testing.smtp_dialogue import SmtpDialogue, SmtpResponse

MSG = b"From: a@example.org\r\nSubject: t\r\n\r\nbody\r\n"


async def raw(d: SmtpDialogue, data: bytes) -> SmtpResponse:
    """Send exactly `data` (a BDAT command and its chunk) and read one reply."""
    await d.send(data)
    return await d.read_reply()


async def test_bdat_chunks_with_and_without_last() -> None:
    engine = await start_engine()
    d = await engine.connect()
    await ehlo_mail_rcpt(d)
    r = await raw(d, b"BDAT 20\r\n" + MSG[:20])
    assert (r.code, r.text) == (250, "2.0.0 20 octets received")
    assert (await raw(d, b"BDAT 0\r\n")).code == 250  # an empty chunk is fine
    r = await raw(d, b"BDAT %d LAST\r\n" % (len(MSG) - 20) + MSG[20:])
    assert (r.code, r.text) == (250, "2.0.0 Ok: queued as Q1")
    assert engine.handler.received[0].content == MSG  # not dot-unstuffed: BDAT has no transparency
    await ehlo_mail_rcpt(d)
    assert (await raw(d, b"BDAT 10\r\n.leading\r\n")).code == 250
    assert (await d.cmd("BDAT 0 LAST")).code == 250  # ends the message with what came before
    assert engine.handler.received[1].content == b".leading\r\n"
    await ehlo_mail_rcpt(d)
    assert (await d.bdat(b"hello", last=True)).code == 250
    assert engine.handler.received[2].content == b"hello\r\n"  # a message ends with a line end
    await d.close()
    await engine.stop()


async def test_bdat_refusals_still_read_the_chunk() -> None:
    engine = await start_engine(max_message_size=1000, max_errors=100)
    d = await engine.connect()
    assert (await d.cmd(b"EHLO client.example.org")).code == 250
    r = await raw(d, b"BDAT 12\r\nMAIL FROM:<>")  # no transaction: the chunk is read, never executed
    assert r.code == 503
    await ehlo_mail_rcpt(d)
    assert (await raw(d, b"BDAT 5\r\nhello")).code == 250
    assert (await d.cmd("DATA")).code == 503  # RFC 3030 §3: no DATA after BDAT
    assert (await d.cmd("RCPT TO:<c@example.net>")).code == 503  # nor RCPT once the content started
    r = await raw(d, b"BDAT 2000 LAST\r\n" + b"x" * 2000)  # over the limit: refused, read in full
    assert (r.code, r.status) == (552, "5.3.4")
    assert (await raw(d, b"BDAT 3 LAST\r\nabc")).code == 503  # the transaction ended with the refusal
    await d.cmd("MAIL FROM:<a@example.org>")
    assert (await d.cmd("RCPT TO:<nobody@example.net>")).code == 550
    assert (await raw(d, b"BDAT 3 LAST\r\nabc")).code == 554  # no valid recipients
    await ehlo_mail_rcpt(d)
    assert (await raw(d, b"BDAT 9 LAST\r\nbare\nlf\r\n")).code == 554
    await ehlo_mail_rcpt(d)
    assert (await raw(d, b"BDAT 7 LAST\r\nnul\x00x\r\n")).code == 554
    assert engine.handler.received == []
    assert (await d.cmd("NOOP")).code == 250  # in step all along
    r = await d.cmd("BDAT many")
    assert r.code == 501  # a size that cannot be parsed cannot be skipped: the session ends
    assert await d.is_closed()
    await engine.stop()


async def test_bdat_not_offered_after_helo() -> None:
    engine = await start_engine()
    d = await engine.connect()
    await d.cmd("HELO client.example.org")
    assert (await raw(d, b"BDAT 4 LAST\r\nQUIT")).code == 503  # read as data, not as QUIT
    assert (await d.cmd("NOOP")).code == 250
    await d.close()
    await engine.stop()


async def test_lmtp_one_reply_per_recipient_after_data_and_bdat() -> None:
    engine = await start_engine(protocol="lmtp")
    d = await engine.connect()
    assert d.greeting is not None and d.greeting.code == 220
    assert (await d.cmd("EHLO client.example.org")).code == 500  # RFC 2033 §4.1: LHLO only
    lhlo = await d.cmd("LHLO client.example.org")
    assert "PIPELINING" in lhlo.lines and "CHUNKING" in lhlo.lines and "STARTTLS" not in lhlo.lines
    await d.cmd("MAIL FROM:<a@example.org>")
    for rcpt in ("b@example.net", "nobody@example.net", "full@example.net", "c@example.net"):
        await d.cmd(f"RCPT TO:<{rcpt}>")
    assert (await d.cmd("DATA")).code == 354
    await d.send(MSG + b".\r\n")
    replies = [await d.read_reply() for _ in range(3)]  # three accepted recipients, three replies
    assert [(r.code, r.status) for r in replies] == [(250, "2.0.0"), (452, "4.2.2"), (250, "2.0.0")]
    assert (await d.cmd("NOOP")).code == 250  # no stray fourth reply
    await d.cmd("MAIL FROM:<a@example.org>")
    await d.cmd("RCPT TO:<full@example.net>")
    await d.cmd("RCPT TO:<b@example.net>")
    await d.send(b"BDAT 10\r\n" + MSG[:10] + b"BDAT %d LAST\r\n" % (len(MSG) - 10) + MSG[10:])
    assert (await d.read_reply()).code == 250  # the first chunk: one reply
    replies = [await d.read_reply() for _ in range(2)]
    assert [r.code for r in replies] == [452, 250]
    assert [m.content for m in engine.handler.received] == [MSG, MSG]
    await d.close()
    await engine.stop()


async def test_lmtp_refused_content_gets_a_reply_per_recipient() -> None:
    engine = await start_engine(protocol="lmtp", max_message_size=100)
    d = await engine.connect()
    await d.cmd("LHLO client.example.org")
    await d.cmd("MAIL FROM:<a@example.org>")
    await d.cmd("RCPT TO:<b@example.net>")
    await d.cmd("RCPT TO:<c@example.net>")
    assert (await d.cmd("DATA")).code == 354
    await d.send(MSG + b"x" * 200 + b"\r\n.\r\n")
    assert [(await d.read_reply()).code for _ in range(2)] == [552, 552]
    assert (await d.cmd("NOOP")).code == 250
    await d.close()
    await engine.stop()
