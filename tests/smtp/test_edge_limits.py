"""Protocol limits from SmtpSection, each with its reply."""

from __future__ import annotations

import asyncio

from gateway_testkit import MESSAGE, GatewayFactory, send_message


async def test_declared_and_actual_size(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_message_size": 2048})
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    r = await d.cmd("MAIL FROM:<a@example.org> SIZE=5000")
    assert (r.code, r.status) == (552, "5.3.4")
    assert (await d.cmd("MAIL FROM:<a@example.org> SIZE=100")).code == 250
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 250
    r = await d.message(MESSAGE + (b"y" * 70 + b"\r\n") * 60)
    assert (r.code, r.status) == (552, "5.3.4")
    assert gw.spool.commits == []
    assert (await d.cmd("NOOP")).code == 250  # still in step after the refused data
    await d.close()


async def test_too_many_recipients(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_recipients": 2})
    d = await gw.connect()
    replies = await send_message(d, rcpts=("alice@example.net", "team@example.net", "carol@example.com"))
    assert [r.code for r in replies[2:5]] == [250, 250, 452]
    assert replies[4].status == "4.5.3"
    assert replies[-1].code == 250
    assert len(gw.spool.commits[0].envelope.recipients) == 2
    await d.close()


async def test_command_line_too_long(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory()
    d = await gw.connect()
    r = await d.cmd("NOOP " + "x" * 600)
    assert (r.code, r.status) == (500, "5.5.2")
    r = await d.cmd("NOOP " + "x" * 200_000)  # far over the reader's buffer: drained, refused
    assert r.code == 500
    assert (await d.cmd("NOOP")).code == 250
    await d.close()


async def test_data_line_too_long(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_line_length": 1000})
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    await d.cmd("MAIL FROM:<a@example.org>")
    await d.cmd("RCPT TO:<alice@example.net>")
    r = await d.message(MESSAGE + b"z" * 1500 + b"\r\n")
    assert r.code == 500
    assert gw.spool.commits == []
    r = await d.message(MESSAGE + b"z" * 100_000 + b"\r\n")  # far over the buffer
    assert r.code in (500, 503)
    await d.close()


async def test_unknown_commands_then_421(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_unknown_commands": 3})
    d = await gw.connect()
    assert (await d.cmd("FOO")).code == 500
    assert (await d.cmd("BAR")).code == 500
    r = await d.cmd("BAZ")
    assert (r.code, r.status) == (421, "4.7.0")
    assert await d.is_closed()


async def test_errors_then_421(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_errors": 3})
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    await d.cmd("MAIL FROM:<a@example.org>")
    assert (await d.cmd("RCPT TO:<x@foreign.example>")).code == 550
    assert (await d.cmd("RCPT TO:<y@foreign.example>")).code == 550
    r = await d.cmd("RCPT TO:<z@foreign.example>")
    assert r.code == 421 or (await d.read_reply()).code == 421
    assert await d.is_closed()


async def test_idle_timeout(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"idle_timeout": 0.3})
    d = await gw.connect()
    r = await asyncio.wait_for(d.read_reply(), 5)
    assert (r.code, r.status) == (421, "4.4.2")
    assert await d.is_closed()


async def test_connections_per_client(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_connections_per_client": 2})
    a, b = await gw.connect(), await gw.connect()
    c = await gw.connect()
    assert c.greeting is not None and (c.greeting.code, c.greeting.status) == (421, "4.7.0")
    assert await c.is_closed()
    await a.cmd("QUIT")
    await a.close()
    await asyncio.sleep(0.1)
    e = await gw.connect()  # a slot is free again
    assert e.greeting is not None and e.greeting.code == 220
    for x in (b, e):
        await x.close()


async def test_connections_in_total(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_connections": 2})
    a, b = await gw.connect(), await gw.connect()
    c = await gw.connect()
    assert c.greeting is not None and c.greeting.code == 421
    for x in (a, b, c):
        await x.close()


async def test_transactions_per_connection(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_transactions_per_connection": 2})
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    for _ in range(2):
        assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
        assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 250
        assert (await d.message(MESSAGE)).code == 250
    r = await d.cmd("MAIL FROM:<a@example.org>")
    assert (r.code, r.status) == (421, "4.7.0")
    assert await d.is_closed()
    assert len(gw.spool.commits) == 2


async def test_header_section_too_large(gateway_factory: GatewayFactory) -> None:
    """A header section over smtp.max_header_size is refused with 552 5.3.4 after the data (Exim's header_maxsize):
    every check reads the header, and megabytes of short fields cost seconds; a big body is no header."""
    gw = await gateway_factory(smtp={"max_header_size": 65536})
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 90) for i in range(700))  # ~72 KB of fields
    for _ in range(2):
        await d.cmd("MAIL FROM:<a@example.org>")
        await d.cmd("RCPT TO:<alice@example.net>")
        r = await d.message(fields + MESSAGE)
        assert (r.code, r.status) == (552, "5.3.4") and "header" in r.text.lower()
        assert gw.spool.commits == []
    await d.cmd("MAIL FROM:<a@example.org>")
    await d.cmd("RCPT TO:<alice@example.net>")
    r = await d.message(fields[: 50 * 1024].rpartition(b"\r\n")[0] + b"\r\n" + MESSAGE + (b"y" * 70 + b"\r\n") * 2000)
    assert r.code == 250  # 50 KB of fields and a 140 KB body
    await d.close()
