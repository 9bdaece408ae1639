"""The AUTH hook (RFC 4954): PLAIN (RFC 4616) and LOGIN, offered and accepted only under TLS."""

from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path

import pytest
from engine_testkit import Engine, RecordingHandler, start_engine

from mailbastion.tls_policy import server_context
from mailbastion.testing.smtp_dialogue import SmtpDialogue

PASSWORD = "Correct-Horse-9"
USERS = {"alice@example.net": PASSWORD}


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture
async def engine(certs: dict[str, Path]) -> Engine:
    started = await start_engine(RecordingHandler(users=USERS), tls=server_context(certs["cert"], certs["key"]))
    yield started  # type: ignore[misc]
    await started.stop()


async def tls_session(engine: Engine, client_tls: ssl.SSLContext) -> SmtpDialogue:
    d = await engine.connect()
    await d.cmd("EHLO client.example.org")
    assert (await d.starttls(client_tls, server_hostname="mx.example.net")).code == 220
    return d


async def test_auth_not_offered_nor_accepted_in_clear_text(engine: Engine,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    d = await engine.connect()
    ehlo = await d.cmd("EHLO client.example.org")
    assert not [x for x in ehlo.lines if x.startswith("AUTH")]
    r = await d.cmd("AUTH PLAIN " + b64(f"\0alice@example.net\0{PASSWORD}"))
    assert (r.code, r.status) == (538, "5.7.11")
    # A client that sends LOGIN's responses blind: refused as commands, and never logged.
    await d.send(f"AUTH LOGIN\r\n{b64('alice@example.net')}\r\n{b64(PASSWORD)}\r\n".encode())
    assert [(await d.read_reply()).code for _ in range(3)] == [538, 500, 500]
    assert engine.handler.auths == []  # the handler never saw the password
    assert b64(PASSWORD) not in caplog.text and PASSWORD not in caplog.text
    await d.close()


async def test_auth_plain_after_starttls(engine: Engine, client_tls: ssl.SSLContext,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    d = await tls_session(engine, client_tls)
    ehlo = await d.cmd("EHLO client.example.org")
    assert "AUTH PLAIN LOGIN" in ehlo.lines
    assert (await d.cmd("AUTH PLAIN " + b64("\0alice@example.net\0wrong"))).code == 535
    ok = await d.cmd("AUTH PLAIN " + b64(f"\0alice@example.net\0{PASSWORD}"))
    assert (ok.code, ok.status) == (235, "2.7.0")
    assert (await d.cmd("AUTH PLAIN " + b64(f"\0alice@example.net\0{PASSWORD}"))).code == 503  # once
    assert (await d.cmd("EHLO client.example.org")).code == 250  # keeps the authentication (RFC 4954 §4)
    assert (await d.cmd("MAIL FROM:<alice@example.net> AUTH=<>")).code == 250  # RFC 4954 §5
    assert engine.handler.mail_peers[-1].authenticated_as == "alice@example.net"
    assert engine.handler.auths == [("PLAIN", "", "alice@example.net")] * 2
    logged = caplog.text
    assert PASSWORD not in logged and b64(f"\0alice@example.net\0{PASSWORD}") not in logged
    await d.close()


async def test_auth_plain_with_empty_challenge_and_login(engine: Engine, client_tls: ssl.SSLContext) -> None:
    d = await tls_session(engine, client_tls)
    await d.cmd("EHLO client.example.org")
    r = await d.cmd("AUTH PLAIN")
    assert (r.code, r.text) == (334, "")
    assert (await d.cmd(b64(f"\0alice@example.net\0{PASSWORD}"))).code == 235
    await d.close()
    d = await tls_session(engine, client_tls)
    await d.cmd("EHLO client.example.org")
    assert (await d.cmd("AUTH LOGIN")).text == b64("Username:")
    assert (await d.cmd(b64("alice@example.net"))).text == b64("Password:")
    assert (await d.cmd(b64(PASSWORD))).code == 235
    await d.close()
    d = await tls_session(engine, client_tls)
    await d.cmd("EHLO client.example.org")
    assert (await d.cmd("AUTH LOGIN " + b64("alice@example.net"))).code == 334  # initial response
    assert (await d.cmd(b64(PASSWORD))).code == 235
    await d.close()


async def test_auth_bad_base64_cancel_and_unknown_mechanism(engine: Engine, client_tls: ssl.SSLContext) -> None:
    d = await tls_session(engine, client_tls)
    await d.cmd("EHLO client.example.org")
    r = await d.cmd("AUTH PLAIN not*base64")
    assert (r.code, r.status) == (501, "5.5.2")
    assert (await d.cmd("AUTH LOGIN")).code == 334
    r = await d.cmd("*")
    assert (r.code, r.status) == (501, "5.0.0")  # cancelled (RFC 4954 §4)
    assert (await d.cmd("AUTH CRAM-MD5")).code == 504
    assert (await d.cmd("AUTH PLAIN " + b64("no-nul-separators"))).code == 501
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
    assert (await d.cmd("AUTH PLAIN " + b64(f"\0alice@example.net\0{PASSWORD}"))).code == 503  # not in a transaction
    assert engine.handler.auths == []
    await d.close()


async def test_a_role_that_authenticates_nobody_offers_no_auth(certs: dict[str, Path],
                                                               client_tls: ssl.SSLContext) -> None:
    engine = await start_engine(tls=server_context(certs["cert"], certs["key"]))
    d = await tls_session(engine, client_tls)
    assert not [x for x in (await d.cmd("EHLO client.example.org")).lines if x.startswith("AUTH")]
    assert (await d.cmd("AUTH PLAIN " + b64(f"\0alice@example.net\0{PASSWORD}"))).code == 502
    await d.close()
    await engine.stop()
