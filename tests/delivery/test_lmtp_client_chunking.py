"""The LMTP client to our own MDA (the link, XMAILBASTION): one write per transaction, MAIL, RCPT and
`BDAT <size> LAST` with the message (RFC 3030), read against the real MDA over mutual TLS: outcomes per
recipient, the refusals of the chunk as a whole, exactly-once when a transaction is sent again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailbastion.apps.mda import build_mda
from mailbastion.config.schema import Settings
from mailbastion.core.outcome import Deferred, Delivered, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.verdict import Folder
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
from mailbastion.directory import Directory
from mailbastion.mailbox.lmtp_server import MdaServer
from mailbastion.tls_policy import client_context

# Lines that start with a dot: BDAT carries them as they are (no dot-stuffing); a bare LF is made CRLF.
MESSAGE = b"From: alice@example.org\r\nSubject: hi\r\n\r\nline one\r\n.starts with a dot\r\n..two dots\nbare LF\r\n"
QID = "00C0FFEE1234ABCD"


def settings(tmp_path: Path, pki: dict[str, Path], **mailbox: object) -> Settings:
    return Settings.model_validate({
        "server": {"hostname": "mda.test", "data_dir": str(tmp_path)},
        "tls": {"ca": str(pki["ca.crt"]), "mda_cert": str(pki["mda.crt"]), "mda_key": str(pki["mda.key"])},
        "lmtp": {"listen": "127.0.0.1:0"},
        "directory": {"url": f"sqlite:///{tmp_path / 'directory.db'}", "recipient_map": str(tmp_path / "map.json")},
        "mailbox": {"root": str(tmp_path / "mail"), "default_quota_bytes": 1024 * 1024, **mailbox},
    })


@contextlib.asynccontextmanager
async def started_mda(s: Settings) -> AsyncIterator[MdaServer]:
    """Our MDA for `s`, with bob and carol at example.org."""
    directory = Directory.from_settings(s)
    directory.add_domain("example.org", by="test")
    for user in ("bob", "carol"):
        directory.add_account(f"{user}@example.org", None, "test")
    server = build_mda(s, directory=directory)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def real_mda(tmp_path: Path, pki: dict[str, Path]) -> AsyncIterator[MdaServer]:
    async with started_mda(settings(tmp_path, pki)) as server:
        yield server


def agent(server: MdaServer, pki: dict[str, Path]) -> LmtpDeliveryAgent:
    ctx = client_context(ca=pki["ca.crt"], cert=pki["gateway-client.crt"], key=pki["gateway-client.key"])
    return LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=ctx, server_hostname="localhost", timeout=10,
                             connect_timeout=5, local_hostname="gw.example.org")


def request(*rcpts: str, sender: str = "alice@example.org", message: bytes = MESSAGE) -> DeliveryRequest:
    return DeliveryRequest(QID, sender, tuple(DeliveryRecipient(r) for r in rcpts), message, folder=Folder.JUNK)


def stored(tmp_path: Path, user: str, folder: str = ".Junk") -> list[bytes]:
    new = tmp_path / "mail" / "example.org" / user / folder / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []


class Writes:
    """Counts the client's writes (one transaction, one write) and keeps what they carried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import asyncio

        self.sent: list[bytes] = []
        original = asyncio.StreamWriter.write

        def write(writer: asyncio.StreamWriter, data: bytes) -> None:
            self.sent.append(bytes(data))
            original(writer, data)

        monkeypatch.setattr(asyncio.StreamWriter, "write", write)


async def test_one_write_per_transaction_and_the_message_as_it_is(
        real_mda: MdaServer, pki: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = agent(real_mda, pki)
    assert await a.wait_ready(10)  # greeting and LHLO: not the transaction's writes
    writes = Writes(monkeypatch)
    out = await a.deliver(request("bob@example.org", "nobody@example.org", "carol@example.org"))
    assert isinstance(out["bob@example.org"], Delivered) and isinstance(out["carol@example.org"], Delivered)
    assert isinstance(out["nobody@example.org"], Failed) and out["nobody@example.org"].reply.code == 550
    [wire] = writes.sent  # MAIL, three RCPT and the chunk in a single write
    body = MESSAGE.replace(b"\nbare", b"\r\nbare")
    assert wire.startswith(b"MAIL FROM:<alice@example.org>") and f"XQUEUEID={QID}".encode() in wire
    assert wire.endswith(f"BDAT {len(body)} LAST\r\n".encode() + body)
    for user in ("bob", "carol"):
        [copy] = stored(tmp_path, user)  # XFOLDER=Junk reached the MDA
        assert copy.endswith(body.replace(b"\r\n", b"\n"))  # ".starts" and "..two" arrive undoubled, unstripped
    await a.close()


async def test_the_same_queue_id_again_is_one_copy_and_the_session_is_reused(
        real_mda: MdaServer, pki: dict[str, Path], tmp_path: Path) -> None:
    a = agent(real_mda, pki)
    for _ in range(3):
        out = await a.deliver(request("bob@example.org"))
        assert isinstance(out["bob@example.org"], Delivered)
    assert len(stored(tmp_path, "bob")) == 1 and a.connections_opened == 1
    await a.close()


async def test_no_recipient_accepted_is_one_refusal_of_the_chunk_and_the_session_stays_usable(
        real_mda: MdaServer, pki: dict[str, Path], tmp_path: Path) -> None:
    a = agent(real_mda, pki)
    out = await a.deliver(request("nobody@example.org", "ghost@example.org"))
    assert {k: (type(v), v.reply.code) for k, v in out.items()} == {
        "nobody@example.org": (Failed, 550), "ghost@example.org": (Failed, 550)}
    out = await a.deliver(request("bob@example.org"))  # the same session, in step
    assert isinstance(out["bob@example.org"], Delivered) and a.connections_opened == 1
    await a.close()


async def test_a_refused_mail_is_every_recipients_answer(real_mda: MdaServer, pki: dict[str, Path]) -> None:
    a = agent(real_mda, pki)
    out = await a.deliver(request("bob@example.org", "carol@example.org", sender="not an address"))
    assert {v.reply.code for v in out.values()} == {501} and all(isinstance(v, Failed) for v in out.values())
    out = await a.deliver(request("bob@example.org"))
    assert isinstance(out["bob@example.org"], Delivered)
    await a.close()


async def test_a_chunk_over_the_size_limit_is_one_reply_per_recipient(
        tmp_path: Path, pki: dict[str, Path]) -> None:
    s = settings(tmp_path, pki)
    s = s.model_copy(update={"smtp": s.smtp.model_copy(update={"max_message_size": 2048})})
    async with started_mda(s) as server:
        a = agent(server, pki)
        big = MESSAGE + (b"x" * 70 + b"\r\n") * 16000  # over 2048 + the MDA's 1 MiB header allowance
        out = await a.deliver(request("bob@example.org", "carol@example.org", message=big))
        assert {k: v.reply.code for k, v in out.items()} == {"bob@example.org": 552, "carol@example.org": 552}
        assert not any(isinstance(v, Deferred) for v in out.values())  # answered, not timed out
        out = await a.deliver(request("bob@example.org"))  # still in step
        assert isinstance(out["bob@example.org"], Delivered)
        await a.close()
    assert stored(tmp_path, "carol") == []
