"""The engine against RFC 5321 and RFC 2920 over real sockets, with a recording handler (no policy)."""

from __future__ import annotations

import asyncio

import pytest
from engine_testkit import RecordingHandler, ehlo_mail_rcpt, start_engine

MSG = b"From: a@example.org\r\nSubject: t\r\n\r\nbody\r\n"


async def test_state_machine_and_handler_calls() -> None:
    engine = await start_engine()
    d = await engine.connect()
    assert d.greeting is not None and d.greeting.code == 220 and d.greeting.status == ""  # RFC 2034 §3
    helo = await d.cmd("HELO client.example.org")
    assert helo.lines == ("mx.example.net",)  # HELO: no extensions
    assert (await d.cmd("MAIL FROM:<a@example.org> SIZE=10")).code == 501  # no parameters after HELO
    ehlo = await d.cmd("EHLO client.example.org")
    for keyword in ("PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES"):
        assert keyword in ehlo.lines, keyword
    assert not [x for x in ehlo.lines if x.startswith(("STARTTLS", "AUTH", "REQUIRETLS", "XCLIENT"))]
    assert (await d.cmd("DATA")).code == 503
    assert (await d.cmd("BDAT 0 LAST")).code == 503
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
    assert (await d.cmd("RCPT TO:<nobody@example.net>")).code == 550
    assert (await d.cmd("DATA")).code == 503  # no accepted recipient
    assert (await d.cmd("RCPT TO:<b@example.net>")).code == 250
    assert (await d.message(MSG)).code == 250
    assert (await d.cmd("RCPT TO:<b@example.net>")).code == 503  # the transaction ended
    assert (await d.cmd("HELP")).code == 214 and (await d.cmd("NOOP")).code == 250
    assert (await d.cmd("RSET extra")).code == 501
    assert (await d.cmd("QUIT")).code == 221
    assert await d.is_closed()
    await engine.stop()
    calls = engine.handler.calls
    assert calls[:3] == ["connect", "reset", "helo client.example.org"]  # HELO resets first (RFC 5321 §4.1.4)
    assert "data" in calls and calls[-1] == "disconnect" and engine.handler.disconnects == 1
    assert engine.handler.received[0].content == MSG


async def test_dsn_and_requiretls_parameters_reach_the_envelope(certs: dict, client_tls: object) -> None:
    from mailbastion.tls_policy import server_context

    engine = await start_engine(tls=server_context(certs["cert"], certs["key"]))
    d = await engine.connect()
    await d.cmd("EHLO client.example.org")
    assert (await d.cmd("MAIL FROM:<a@example.org> REQUIRETLS")).code == 555  # offered only under TLS
    assert (await d.starttls(client_tls, server_hostname="mx.example.net")).code == 220  # type: ignore[arg-type]
    ehlo = await d.cmd("EHLO client.example.org")
    assert "REQUIRETLS" in ehlo.lines and "STARTTLS" not in ehlo.lines
    assert (await d.cmd("MAIL FROM:<a@example.org> RET=HDRS ENVID=abc+2Bdef REQUIRETLS")).code == 250
    assert (await d.cmd("RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;B+40example.net")).code == 250
    assert (await d.cmd("RCPT TO:<c@example.net>")).code == 250
    assert (await d.message(MSG)).code == 250
    env = engine.handler.received[0].envelope
    assert (env.dsn_ret, env.dsn_envid, env.requiretls) == ("HDRS", "abc+def", True)
    assert env.dsn_of(0).notify == ("SUCCESS", "DELAY") and env.dsn_of(0).orcpt == "rfc822;B@example.net"
    assert env.dsn_of(1).notify == () and env.dsn_of(1).wants("FAILURE")
    assert engine.handler.received[0].peer.tls is not None
    await d.close()
    await engine.stop()


async def test_pipelining_in_every_position() -> None:
    engine = await start_engine()
    d = await engine.connect()
    await d.cmd("EHLO client.example.org")
    # A whole transaction, then the next one, then QUIT, in three writes.
    await d.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<nobody@example.net>\r\n"
                 b"RCPT TO:<c@example.net>\r\nDATA\r\n")
    assert [(await d.read_reply()).code for _ in range(5)] == [250, 250, 550, 250, 354]
    await d.send(MSG + b".\r\nRSET\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<y@example.net>\r\nBDAT 4\r\nabc\n")
    codes = [(await d.read_reply()).code for _ in range(5)]
    assert codes == [250, 250, 250, 250, 250]
    await d.send(b"BDAT 7 LAST\r\nde\r\nf\r\nNOOP\r\nQUIT\r\n")  # BDAT data and commands in one write
    assert [(await d.read_reply()).code for _ in range(3)] == [554, 250, 221]  # "abc\n": a bare LF
    assert [str(r) for r in engine.handler.received[0].envelope.recipients] == ["b@example.net", "c@example.net"]
    assert len(engine.handler.received) == 1
    await d.close()
    await engine.stop()


async def test_replies_of_a_batch_come_in_one_write() -> None:
    engine = await start_engine()
    d = await engine.connect()
    await d.cmd("EHLO client.example.org")
    (session,) = engine.edge.connections
    before = session.writes
    await d.send(b"MAIL FROM:<a@example.org>\r\n" + b"RCPT TO:<b@example.net>\r\n" * 20 + b"NOOP\r\n")
    assert [(await d.read_reply()).code for _ in range(22)] == [250] * 22
    assert session.writes - before == 1  # 22 replies, one transport.write (RFC 2920 §3.1 allows it)
    await d.close()
    await engine.stop()


async def test_pipelining_without_ehlo_is_refused() -> None:
    engine = await start_engine()
    d = await engine.connect()
    await d.send(b"HELO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
    assert (await d.read_reply()).code == 250  # HELO's own reply
    r = await d.read_reply()
    assert (r.code, r.status, r.text) == (554, "5.5.0", "5.5.0 Error: SMTP protocol synchronization")
    assert await d.is_closed()
    assert engine.handler.mails == []  # what was sent ahead was never executed
    d = await engine.connect()
    await d.send(b"NOOP\r\nNOOP\r\n")  # before any EHLO, nothing may be pipelined
    assert (await d.read_reply()).code == 250
    assert (await d.read_reply()).code == 554
    await engine.stop()


async def test_content_before_354_is_refused() -> None:
    engine = await start_engine()
    d = await engine.connect()
    await ehlo_mail_rcpt(d)
    await d.send(b"DATA\r\n" + MSG + b".\r\n")  # RFC 2920 §3.1: DATA ends a group
    r = await d.read_reply()
    assert (r.code, r.status) == (554, "5.5.0")
    assert await d.is_closed()
    assert engine.handler.received == []
    await engine.stop()


async def test_early_talker_is_refused() -> None:
    engine = await start_engine()
    d = await engine.connect(read_greeting=False, preamble=b"EHLO early.example.org\r\n")
    await asyncio.sleep(0.3)
    # Either the greeting had gone out first (a race with the client: then it is served) or the
    # client talked before it (refused). With a greet pause it is always the second:
    replies_ = [await d.read_reply()]
    if replies_[0].code == 220:
        assert (await d.read_reply()).code == 250
    else:
        assert (replies_[0].code, replies_[0].status) == (554, "5.5.0")
    await d.close()
    await engine.stop()

    engine = await start_engine(greet_pause=1.0)
    d = await engine.connect(read_greeting=False, preamble=b"EHLO early.example.org\r\n")
    r = await d.read_reply()
    assert (r.code, r.status) == (554, "5.5.0")
    assert await d.is_closed()
    polite = await engine.connect(timeout=10)  # waits for the greeting: served
    assert polite.greeting is not None and polite.greeting.code == 220
    assert (await polite.cmd("EHLO polite.example.org")).code == 250
    await polite.close()
    await engine.stop()


async def test_nul_and_bare_newlines_in_commands() -> None:
    engine = await start_engine()
    d = await engine.connect()
    r = await d.cmd(b"HELO a\x00b.example.org")
    assert (r.code, r.status) == (500, "5.5.2") and "NUL" in r.text
    r = await d.cmd(b"HELO a\rb.example.org")
    assert (r.code, r.status) == (500, "5.5.2")
    assert (await d.cmd("EHLO ok.example.org")).code == 250
    assert engine.handler.calls.count("helo ok.example.org") == 1 and len(engine.handler.calls) == 3
    await ehlo_mail_rcpt(d)
    assert (await d.message(b"Subject: x\r\n\r\nnul \x00 here\r\n")).code == 554
    assert engine.handler.received == []
    await d.close()
    await engine.stop()


async def test_line_limits() -> None:
    engine = await start_engine(max_command_length=512)
    d = await engine.connect()
    assert (await d.cmd("HELO " + "a" * 600)).code == 500
    assert (await d.cmd("NOOP " + "x" * 100_000)).code == 500  # drained to its CRLF, refused once
    assert (await d.cmd("EHLO client.example.org")).code == 250
    assert (await d.cmd("MAIL FROM:<a@example.org> " + "SIZE=1 " * 80)).code in (500, 501)
    assert (await d.cmd("NOOP")).code == 250
    await d.close()
    await engine.stop()


async def test_errors_limit_and_452_not_counted() -> None:
    engine = await start_engine(max_recipients=2, max_errors=3)
    d = await engine.connect()
    await ehlo_mail_rcpt(d, "b@example.net", "c@example.net")
    for _ in range(10):
        r = await d.cmd("RCPT TO:<d@example.net>")
        assert (r.code, r.status) == (452, "4.5.3")  # not an error towards max_errors
    assert (await d.message(MSG)).code == 250
    await d.cmd("MAIL FROM:<a@example.org>")
    assert (await d.cmd("RCPT TO:<nobody1@example.net>")).code == 550
    assert (await d.cmd("RCPT TO:<nobody2@example.net>")).code == 550
    r = await d.cmd("RCPT TO:<nobody3@example.net>")
    assert r.code == 550
    assert (await d.read_reply()).code == 421
    assert await d.is_closed()
    await engine.stop()


async def test_handler_exception_is_451_not_a_traceback() -> None:
    engine = await start_engine(RecordingHandler(fail_data=True))
    d = await engine.connect()
    await ehlo_mail_rcpt(d)
    r = await d.message(MSG)
    assert (r.code, r.status) == (451, "4.3.0") and "Traceback" not in r.text
    assert (await d.cmd("NOOP")).code == 250
    await d.close()
    await engine.stop()


async def test_half_closed_client_gets_its_replies() -> None:
    engine = await start_engine()
    d = await engine.connect()
    await d.cmd("EHLO client.example.org")
    d.writer.write(b"NOOP\r\nQUIT\r\n")
    d.writer.write_eof()  # the client says it will send nothing more, and waits for the replies
    data = await asyncio.wait_for(d.reader.read(), 10)
    assert data.startswith(b"250 2.0.0") and b"221 2.0.0" in data
    await d.close()
    await engine.stop()
    assert engine.edge.connections == set()


async def test_idle_timeout_and_connection_slot() -> None:
    engine = await start_engine(idle_timeout=0.3, max_connections_per_client=1)
    d = await engine.connect()
    second = await engine.connect()
    assert second.greeting is not None and second.greeting.code == 421
    r = await asyncio.wait_for(d.read_reply(), 5)
    assert (r.code, r.status) == (421, "4.4.2")
    assert await d.is_closed()
    for _ in range(50):
        if engine.edge.gate.open_connections == 0:
            break
        await asyncio.sleep(0.05)
    again = await engine.connect()
    assert again.greeting is not None and again.greeting.code == 220
    await again.close()
    await engine.stop()


@pytest.mark.parametrize("rcpt", ["<Postmaster>", "<postmaster>", "<POSTMASTER>"])
async def test_postmaster_without_domain_parses(rcpt: str) -> None:
    engine = await start_engine()
    d = await engine.connect()
    await d.cmd("EHLO client.example.org")
    await d.cmd("MAIL FROM:<a@example.org>")
    assert (await d.cmd(f"RCPT TO:{rcpt}")).code == 250
    assert (await d.cmd("RCPT TO:<someone>")).code == 501  # only the postmaster may come without a domain
    assert (await d.message(MSG)).code == 250
    (got,) = engine.handler.received[0].envelope.recipients
    assert got.is_bare_postmaster
    await d.close()
    await engine.stop()
