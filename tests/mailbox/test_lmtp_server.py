"""The MDA over real mutual TLS on 127.0.0.1: who may connect, per-recipient replies, Junk, quota, aliases."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from mda_testkit import Lmtp, Mda, client_context, lmtp_settings

from mailbastion.apps.mda import build_mda

MESSAGE = (b"From: sender@remote.net\r\nTo: alice@example.org\r\nSubject: test\r\n"
           b"Message-ID: <1@remote.net>\r\n\r\nHello Alice.\r\n.leading dot line\r\n")


def inbox(mda: Mda, user: str, folder: str = "") -> list[bytes]:
    d = mda.mail / "example.org" / user / folder / "new"
    return [p.read_bytes() for p in sorted(d.iterdir())] if d.exists() else []


def expected(rcpt: str, message: bytes, sender: str = "sender@remote.net") -> bytes:
    return f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n".encode() + message.replace(b"\r\n", b"\n")


async def session(mda: Mda, ctx: ssl.SSLContext | None = None) -> Lmtp:
    client = await Lmtp.connect(mda.port, ctx or client_context(mda.pki))
    assert (await client.cmd("LHLO gateway.test")).startswith("250")
    return client


async def test_gateway_client_delivers(mda: Mda) -> None:
    c = await session(mda)
    assert (await c.cmd("MAIL FROM:<sender@remote.net>")).startswith("250")
    assert (await c.cmd("RCPT TO:<alice@example.org>")).startswith("250 2.1.5")
    assert await c.data(MESSAGE, 1) == ["250 2.0.0 Ok: delivered"]
    await c.close()
    assert inbox(mda, "alice") == [expected("alice@example.org", MESSAGE)]


REFUSED = (ssl.SSLError, ConnectionError)  # never a timeout: the handshake itself fails


async def test_client_without_certificate_is_refused(mda: Mda) -> None:
    with pytest.raises(REFUSED):
        c = await Lmtp.connect(mda.port, client_context(mda.pki, cert=False))
        await c.cmd("LHLO x")
    assert mda.server.sessions_opened == 0  # the TLS handshake failed: no LMTP session ever started
    assert inbox(mda, "alice") == []


async def test_client_with_certificate_from_another_ca_is_refused(mda: Mda, other_pki: dict[str, Path]) -> None:
    with pytest.raises(REFUSED):
        c = await Lmtp.connect(mda.port, client_context(mda.pki, cert_from=other_pki))
        await c.cmd("LHLO x")
    assert mda.server.sessions_opened == 0


async def test_unknown_and_deactivated_recipients_refused_at_rcpt(mda: Mda) -> None:
    mda.directory.deactivate("bob@example.org", "hr", "leaver")
    c = await session(mda)
    await c.cmd("MAIL FROM:<sender@remote.net>")
    assert (await c.cmd("RCPT TO:<nobody@example.org>")).startswith("550 5.1.1")
    assert (await c.cmd("RCPT TO:<bob@example.org>")).startswith("550 5.1.1")
    assert (await c.cmd("RCPT TO:<alice@elsewhere.net>")).startswith("550 5.1.1")
    assert (await c.cmd("RCPT TO:<alice@example.org>")).startswith("250")
    assert await c.data(MESSAGE, 1) == ["250 2.0.0 Ok: delivered"]
    await c.close()
    assert inbox(mda, "bob") == []


async def test_one_reply_per_recipient_and_full_mailbox_defers_only_its_own(mda: Mda) -> None:
    mda.directory.set_quota("bob@example.org", 50, "admin", "tiny")
    c = await session(mda)
    await c.cmd("MAIL FROM:<sender@remote.net>")
    assert (await c.cmd("RCPT TO:<alice@example.org>")).startswith("250")
    assert (await c.cmd("RCPT TO:<bob@example.org>")).startswith("250")
    assert (await c.cmd("RCPT TO:<nobody@example.org>")).startswith("550")  # gets no DATA reply
    replies = await c.data(MESSAGE, 2)
    assert replies[0] == "250 2.0.0 Ok: delivered"
    assert replies[1].startswith("452 4.2.2")
    assert (await c.cmd("NOOP")).startswith("250")  # no stray third reply
    await c.close()
    assert len(inbox(mda, "alice")) == 1 and inbox(mda, "bob") == []


async def test_a_junk_header_is_stripped_and_never_honoured(mda: Mda) -> None:
    # The folder comes only from our gateway's XFOLDER parameter (test_lmtp_link.py); a header that
    # claims it is a forgery from outside: removed, and the copy goes to INBOX.
    msg = b"X-Mailbastion-Junk: yes\r\n" + MESSAGE
    c = await session(mda)
    await c.cmd("MAIL FROM:<sender@remote.net>")
    await c.cmd("RCPT TO:<alice@example.org>")
    assert await c.data(msg, 1) == ["250 2.0.0 Ok: delivered"]
    await c.close()
    assert inbox(mda, "alice", ".Junk") == []
    assert inbox(mda, "alice") == [expected("alice@example.org", MESSAGE)]


async def test_alias_and_plus_addressing(mda: Mda) -> None:
    mda.directory.add_alias("team@example.org", "alice@example.org", by="admin")
    mda.directory.add_alias("team@example.org", "bob@example.org", by="admin")
    mda.directory.add_alias("ext@example.org", "friend@remote.net", by="admin")
    c = await session(mda)
    await c.cmd("MAIL FROM:<>")
    assert (await c.cmd("RCPT TO:<Team+Weekly@example.org>")).startswith("250")
    assert (await c.cmd("RCPT TO:<alice+lists@example.org>")).startswith("250")
    assert (await c.cmd("RCPT TO:<ext@example.org>")).startswith("550 5.1.1")  # only remote targets
    assert await c.data(MESSAGE, 2) == ["250 2.0.0 Ok: delivered"] * 2
    await c.close()
    # alice is reached twice in one transaction but gets one copy
    assert inbox(mda, "alice") == [expected("alice@example.org", MESSAGE, sender="")]
    assert inbox(mda, "bob") == [expected("bob@example.org", MESSAGE, sender="")]


async def test_delivered_to_loop_is_refused(mda: Mda) -> None:
    c = await session(mda)
    await c.cmd("MAIL FROM:<sender@remote.net>")
    await c.cmd("RCPT TO:<alice@example.org>")
    assert (await c.data(b"Delivered-To: alice@example.org\r\n" + MESSAGE, 1))[0].startswith("554 5.4.6")
    await c.close()


async def test_several_transactions_and_stop_drains(mda: Mda) -> None:
    c = await session(mda)
    for i in range(3):
        await c.cmd("MAIL FROM:<sender@remote.net>")
        await c.cmd("RCPT TO:<bob@example.org>")
        assert await c.data(MESSAGE.replace(b"test", f"test {i}".encode()), 1) == ["250 2.0.0 Ok: delivered"]
    await mda.server.stop()
    with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError)):
        await c.cmd("NOOP")
    assert len(inbox(mda, "bob")) == 3


async def test_oversized_message_gets_one_reply_per_recipient(mda: Mda) -> None:
    mda.server.data_size_limit = 200  # read when a session starts
    c = await session(mda)
    await c.cmd("MAIL FROM:<sender@remote.net>")
    await c.cmd("RCPT TO:<alice@example.org>")
    await c.cmd("RCPT TO:<bob@example.org>")
    replies = await c.data(MESSAGE + b"x" * 300 + b"\r\n", 2)
    assert all(r.startswith("552 5.3.4") for r in replies)
    assert (await c.cmd("NOOP")).startswith("250")  # still in step
    await c.close()
    assert inbox(mda, "alice") == [] and inbox(mda, "bob") == []


async def test_stop_waits_for_a_delivery_in_progress(mda: Mda) -> None:
    store = mda.server.handler.store
    original = store.deliver

    def slow_deliver(*args: object, **kwargs: object) -> Path:
        import time

        time.sleep(0.5)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    store.deliver = slow_deliver  # type: ignore[method-assign]
    c = await session(mda)
    await c.cmd("MAIL FROM:<sender@remote.net>")
    await c.cmd("RCPT TO:<alice@example.org>")
    assert (await c.cmd("DATA")).startswith("354")
    c.writer.write(MESSAGE + b".\r\n")
    await c.writer.drain()
    await asyncio.sleep(0.1)  # the delivery is now running
    await mda.server.stop()
    assert await c.reply() == "250 2.0.0 Ok: delivered"  # the promise was kept before the session closed
    assert len(inbox(mda, "alice")) == 1


def test_build_mda_refuses_to_start_without_tls_files(tmp_path: Path, pki: dict[str, Path]) -> None:
    from mailbastion.core.errors import ConfigError

    settings = lmtp_settings(tmp_path, {**pki, "mda.crt": tmp_path / "missing.crt"})
    with pytest.raises(ConfigError, match="MDA certificate"):
        build_mda(settings)
