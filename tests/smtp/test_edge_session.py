"""The SMTP conversation itself: greeting, EHLO, a message end to end, sequence errors."""

from __future__ import annotations

from gateway_testkit import MESSAGE, OUR_HOST, Gateway, GatewayFactory, send_message


async def test_greeting_and_ehlo_extensions(gateway: Gateway) -> None:
    d = await gateway.connect()
    assert d.greeting is not None and d.greeting.code == 220 and OUR_HOST in d.greeting.text
    r = await d.cmd("EHLO mail.example.org")
    assert r.code == 250
    for ext in ("PIPELINING", "SIZE ", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "STARTTLS"):
        assert any(line.startswith(ext) for line in r.lines), ext
    assert not any(line.startswith("XCLIENT") for line in r.lines)
    assert not any(line.startswith("AUTH") for line in r.lines)  # the MX authenticates nobody
    await d.close()


async def test_message_is_committed_before_250(gateway: Gateway) -> None:
    d = await gateway.connect()
    replies = await send_message(d)
    assert [r.code for r in replies] == [250, 250, 250, 250]
    final = replies[-1]
    assert final.status == "2.0.0"
    assert len(gateway.spool.commits) == 1
    commit = gateway.spool.commits[0]
    assert commit.queue_id in final.text  # the id the client sees is the one the spool returned
    assert commit.client == "127.0.0.1"
    assert [str(a) for a in commit.envelope.recipients] == ["alice@example.net"]
    assert commit.message.startswith(b"Received: from mail.example.org")
    assert commit.message.endswith(MESSAGE)
    assert (await d.cmd("QUIT")).code == 221
    await d.close()


async def test_pipelined_transaction(gateway: Gateway) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    await d.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.net>\r\n"
                 b"RCPT TO:<nobody@example.net>\r\nDATA\r\n")
    codes = [(await d.read_reply()).code for _ in range(4)]
    assert codes == [250, 250, 550, 354]
    await d.send(MESSAGE + b".\r\n")
    assert (await d.read_reply()).code == 250
    assert [str(a) for a in gateway.spool.commits[0].envelope.recipients] == ["alice@example.net"]
    await d.close()


async def test_sequence_errors(gateway: Gateway) -> None:
    d = await gateway.connect()
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 503  # no EHLO yet
    await d.cmd("EHLO mail.example.org")
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 503
    assert (await d.cmd("DATA")).code == 503
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 503  # nested
    assert (await d.cmd("DATA")).code == 503  # no recipient
    assert (await d.cmd("RSET")).code == 250
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 503  # RSET forgot the sender
    assert (await d.cmd("NOOP")).code == 250
    assert (await d.cmd("VRFY alice")).code == 252  # never discloses whether a mailbox exists
    assert (await d.cmd("EXPN staff")).code == 502
    assert (await d.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")).code == 502
    await d.close()


async def test_malformed_commands_and_addresses(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(smtp={"max_errors": 50})
    d = await gateway.connect()
    assert (await d.cmd("EHLO")).code == 501
    await d.cmd("EHLO mail.example.org")
    cases = {
        "MAIL FROM:<sender@example.org": 501,  # unbalanced
        "MAIL FROM sender@example.org": 501,  # no colon
        "MAIL FROM:<sender@example.org> BODY=9BIT": 501,
        "MAIL FROM:<sender@example.org> SIZE=abc": 501,
        "MAIL FROM:<sender@example.org> FOO=bar": 555,
        "MAIL FROM:<a b@example.org>": 501,
        "MAIL FROM:<@relay.example:sender@example.org>": 501,
        "MAIL FROM:<jörg@example.org>": 501,  # UTF-8 without SMTPUTF8
    }
    for line, code in cases.items():
        r = await d.cmd(line)
        assert r.code == code, (line, r)
    assert (await d.cmd("MAIL FROM:<>")).code == 250  # the null sender is fine (bounces)
    assert (await d.cmd("RCPT TO:<>")).code == 501
    assert (await d.cmd("RCPT TO:<alice@example.net> FOO=bar")).code == 555
    assert (await d.cmd("RCPT TO:<alice@example.net> NOTIFY=SOMETIMES")).code == 501
    await d.close()


async def test_smtputf8_sender(gateway: Gateway) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    assert (await d.cmd("MAIL FROM:<jörg@example.org> SMTPUTF8")).code == 250
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 250
    assert (await d.message(MESSAGE)).code == 250
    assert gateway.spool.commits[0].envelope.smtputf8
    await d.close()


async def test_invalid_utf8_in_command(gateway: Gateway) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    r = await d.cmd(b"MAIL FROM:<j\xf6rg@example.org> SMTPUTF8")  # Latin-1, not UTF-8
    assert r.code == 501
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
    await d.close()
