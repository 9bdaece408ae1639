"""The LMTP link's MDA side over real mutual TLS: XMAILBASTION, XFOLDER, XQUEUEID and exactly-once delivery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mda_testkit import Lmtp, Mda, client_context, lmtp_settings

from mailbastion.apps.mda import build_mda
from mailbastion.core.address import parse_address
from mailbastion.core.errors import ConfigError
from mailbastion.directory import Directory

MESSAGE = (b"From: sender@remote.net\r\nTo: alice@example.org\r\nSubject: test\r\n"
           b"Message-ID: <1@remote.net>\r\n\r\nHello Alice.\r\n")
QID = "0006270DEADBEEF42"


def files(mda: Mda, user: str, folder: str = "") -> list[Path]:
    box = mda.mail / "example.org" / user / folder
    return sorted(p for sub in ("new", "cur") if (box / sub).exists() for p in (box / sub).iterdir())


async def session(mda: Mda, **ctx: object) -> Lmtp:
    client = await Lmtp.connect(mda.port, client_context(mda.pki, **ctx))  # type: ignore[arg-type]
    assert (await client.cmd("LHLO gateway.test")).startswith("250")
    return client


async def deliver(mda: Mda, *rcpts: str, params: str = f" XQUEUEID={QID}") -> list[str]:
    c = await session(mda)
    assert (await c.cmd(f"MAIL FROM:<sender@remote.net>{params}")).startswith("250")
    for r in rcpts:
        assert (await c.cmd(f"RCPT TO:<{r}>")).startswith("250")
    replies = await c.data(MESSAGE, len(rcpts))
    await c.close()
    return replies


async def test_link_extension_offered_to_our_gateway_only(mda: Mda) -> None:
    c = await Lmtp.connect(mda.port, client_context(mda.pki))
    lhlo = await c.cmd("LHLO gateway.test")
    for keyword in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "SIZE ", "XMAILBASTION"):
        assert f"250-{keyword}" in lhlo or f"250 {keyword}" in lhlo, keyword
    await c.close()


async def test_xfolder_from_an_unverified_client_is_refused(tmp_path: Path, pki: dict[str, Path]) -> None:
    settings = lmtp_settings(tmp_path, pki, require_client_cert=False)
    directory = Directory.from_settings(settings)
    directory.add_domain("example.org", by="test")
    directory.add_account("alice@example.org", None, "test")
    server = build_mda(settings, directory=directory)
    await server.start()
    try:
        mda = Mda(server, directory, tmp_path / "mail", pki, server.port)
        c = await Lmtp.connect(mda.port, client_context(pki, cert=False))
        assert "XMAILBASTION" not in await c.cmd("LHLO gateway.test")
        assert (await c.cmd("MAIL FROM:<sender@remote.net> XFOLDER=Junk")).startswith("555 5.5.4")
        assert (await c.cmd(f"MAIL FROM:<sender@remote.net> XQUEUEID={QID}")).startswith("555 5.5.4")
        assert (await c.cmd("MAIL FROM:<> XBOUNCEOF=bob@example.org")).startswith("555 5.5.4")
        assert (await c.cmd("MAIL FROM:<sender@remote.net>")).startswith("250")  # INBOX, no exactly-once
        await c.cmd("RCPT TO:<alice@example.org>")
        assert await c.data(MESSAGE, 1) == ["250 2.0.0 Ok: delivered"]
        await c.close()
        assert len(files(mda, "alice")) == 1 and files(mda, "alice", ".Junk") == []
    finally:
        await server.stop()


async def test_xfolder_chooses_the_folder(mda: Mda) -> None:
    assert await deliver(mda, "alice@example.org", params=" XFOLDER=Junk") == ["250 2.0.0 Ok: delivered"]
    assert await deliver(mda, "alice@example.org", params=" XFOLDER=INBOX") == ["250 2.0.0 Ok: delivered"]
    assert len(files(mda, "alice", ".Junk")) == 1 and len(files(mda, "alice")) == 1
    c = await session(mda)
    assert (await c.cmd("MAIL FROM:<sender@remote.net> XFOLDER=Spam")).startswith("501 5.5.4")
    assert (await c.cmd("MAIL FROM:<sender@remote.net> XQUEUEID=../etc")).startswith("501 5.5.4")
    await c.close()
    # no internal header is needed any more, and none reaches the mailbox
    assert b"X-Mailbastion" not in files(mda, "alice", ".Junk")[0].read_bytes()


async def test_redelivery_of_one_queue_id_gives_one_file(mda: Mda) -> None:
    assert await deliver(mda, "alice@example.org", "bob@example.org") == ["250 2.0.0 Ok: delivered"] * 2
    # The gateway crashed before it saw the replies: it delivers the same queue entry again.
    assert await deliver(mda, "alice@example.org", "bob@example.org") == ["250 2.0.0 Ok: delivered"] * 2
    assert len(files(mda, "alice")) == 1 and len(files(mda, "bob")) == 1
    assert files(mda, "alice")[0].name.startswith(f"{QID}.B")
    # A mail client read alice's copy and then deleted it: a late redelivery still writes nothing.
    files(mda, "alice")[0].unlink()
    assert await deliver(mda, "alice@example.org") == ["250 2.0.0 Ok: delivered"]
    assert files(mda, "alice") == []
    # Another queue entry is another message.
    assert await deliver(mda, "alice@example.org", params=" XQUEUEID=0006270DEADBEEF43") == ["250 2.0.0 Ok: delivered"]
    assert len(files(mda, "alice")) == 1


async def test_exactly_once_across_a_restart(tmp_path: Path, pki: dict[str, Path]) -> None:
    settings = lmtp_settings(tmp_path, pki)
    directory = Directory.from_settings(settings)
    directory.add_domain("example.org", by="test")
    directory.add_account("alice@example.org", None, "test")
    for _ in range(2):
        server = build_mda(settings, directory=directory)
        await server.start()
        try:
            mda = Mda(server, directory, tmp_path / "mail", pki, server.port)
            assert await deliver(mda, "alice@example.org") == ["250 2.0.0 Ok: delivered"]
        finally:
            await server.stop()
    assert len(files(mda, "alice")) == 1


@pytest.mark.parametrize("where", ["new", "cur"])
async def test_crash_between_the_file_and_the_journal(mda: Mda, where: str) -> None:
    """The MDA died after the Maildir link and before its journal said done: the deterministic name is
    found (in new/, or in cur/ where a mail client moved it and added flags) and not written again."""
    handler = mda.server.handler
    assert handler.journal is not None
    alice = parse_address("alice@example.org")
    data = b"Return-Path: <sender@remote.net>\nDelivered-To: alice@example.org\n" + MESSAGE.replace(b"\r\n", b"\n")
    handler.journal.begin(QID, [alice.normalized])
    path = handler.store.deliver(alice, data, queue_id=QID)
    if where == "cur":
        os.rename(path, path.parent.parent / "cur" / (path.name + ":2,S"))
    assert await deliver(mda, "alice@example.org") == ["250 2.0.0 Ok: delivered"]
    assert len(files(mda, "alice")) == 1


async def test_intent_without_a_file_is_delivered(mda: Mda) -> None:
    handler = mda.server.handler
    assert handler.journal is not None
    handler.journal.begin(QID, ["alice@example.org"])  # the crash came before the file was written
    assert await deliver(mda, "alice@example.org") == ["250 2.0.0 Ok: delivered"]
    assert len(files(mda, "alice")) == 1


async def test_replies_per_recipient_after_bdat_last(mda: Mda) -> None:
    mda.directory.set_quota("bob@example.org", 50, "admin", "tiny")
    c = await session(mda)
    assert "CHUNKING" in await c.cmd("LHLO gateway.test")
    await c.cmd(f"MAIL FROM:<sender@remote.net> XQUEUEID={QID}")
    await c.cmd("RCPT TO:<alice@example.org>")
    await c.cmd("RCPT TO:<bob@example.org>")
    c.writer.write(b"BDAT 20\r\n" + MESSAGE[:20] + b"BDAT %d LAST\r\n" % (len(MESSAGE) - 20) + MESSAGE[20:])
    await c.writer.drain()
    assert (await c.reply()).startswith("250 2.0.0 20 octets")
    replies = [await c.reply(), await c.reply()]
    assert replies[0] == "250 2.0.0 Ok: delivered" and replies[1].startswith("452 4.2.2")
    assert (await c.cmd("NOOP")).startswith("250")
    await c.close()
    assert len(files(mda, "alice")) == 1 and files(mda, "bob") == []
    # bob's mailbox gets room; the gateway retries bob only, with the same queue id
    mda.directory.set_quota("bob@example.org", 10_000, "admin", "bigger")
    assert await deliver(mda, "bob@example.org") == ["250 2.0.0 Ok: delivered"]
    assert len(files(mda, "bob")) == 1


async def test_one_mda_per_mailbox_root(mda: Mda, tmp_path: Path, pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="another MDA"):
        build_mda(lmtp_settings(tmp_path, pki), directory=mda.directory)


async def test_a_queue_id_header_in_the_message_means_nothing(mda: Mda) -> None:
    # Only the XQUEUEID parameter of our gateway turns exactly-once on; a header in the message never
    # does (it could be forged by a sender to suppress a delivery), and it is removed before writing.
    forged = f"X-Mailbastion-Queue-Id: {QID}\r\n".encode() + MESSAGE
    for _ in range(2):
        c = await session(mda)
        await c.cmd("MAIL FROM:<sender@remote.net>")
        await c.cmd("RCPT TO:<alice@example.org>")
        assert await c.data(forged, 1) == ["250 2.0.0 Ok: delivered"]
        await c.close()
    copies = files(mda, "alice")
    assert len(copies) == 2 and all(b"X-Mailbastion" not in p.read_bytes() for p in copies)


async def test_xbounceof_tells_the_listeners_once_per_written_bounce(mda: Mda) -> None:
    """A DSN the gateway matched to mail we sent names our senders (XBOUNCEOF): told once the copy is
    written, not again for a resent queue id, never from a malformed list."""
    told: list[tuple[str, str]] = []
    mda.server.handler.bounce_listeners = [lambda s, d: told.append((s, d))]
    odd = "x,y+z@example.org"  # "," and "+" travel escaped
    params = " XQUEUEID=BOUNCE7 XFOLDER=INBOX XBOUNCEOF=bob@example.org,bob@example.org,x+2Cy+2Bz@example.org"
    assert await deliver(mda, "alice@example.org", params=params) == ["250 2.0.0 Ok: delivered"]
    assert [s for s, _ in told] == ["bob@example.org", "bob@example.org", odd]
    assert all("BOUNCE7" in d for _, d in told)
    assert await deliver(mda, "alice@example.org", params=params) == ["250 2.0.0 Ok: delivered"]  # resent
    assert len(told) == 3 and len(files(mda, "alice")) == 1
    c = await session(mda)
    for bad in ("XBOUNCEOF=", "XBOUNCEOF=nobody", "XBOUNCEOF=a@b+ZZ", "XBOUNCEOF=a@b+FF"):
        assert (await c.cmd(f"MAIL FROM:<> XQUEUEID=BOUNCE8 {bad}")).startswith("501 5.5.4"), bad
    await c.close()
    assert len(told) == 3

