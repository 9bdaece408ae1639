"""The MDA handler's hot path: a local recipient the directory answers from memory is accepted at RCPT on
the event loop; anything else is asked in a worker thread, as before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailbastion.core import replies
from mailbastion.core.replies import Reply
from mailbastion.core.address import Address, parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.peer import PeerInfo
from mailbastion.core.ports import Resolution, ResolutionKind
from mailbastion.core.threads import Workers
from mailbastion.mailbox.lmtp_handler import LmtpHandler
from mailbastion.mailbox.maildir import MaildirStore

ALICE = parse_address("alice@example.org")
LIST = parse_address("list@example.org")
NOBODY = parse_address("nobody@example.org")
PEER = PeerInfo("127.0.0.1", session_id="s1")
ENVELOPE = Envelope(parse_address("sender@example.net"))


class Directory:
    """Alice is an account, list@ an alias of hers; `from_memory` says what resolve_from_memory answers."""

    def __init__(self, from_memory: Callable[[Address], Resolution | None]) -> None:
        self.from_memory = from_memory
        self.resolved: list[Address] = []

    def resolve(self, address: Address) -> Resolution:
        self.resolved.append(address)
        if address == ALICE:
            return Resolution(ResolutionKind.LOCAL, ALICE)
        if address == LIST:
            return Resolution(ResolutionKind.ALIAS, LIST, targets=(ALICE,))
        return Resolution(ResolutionKind.UNKNOWN_USER, address)

    def resolve_from_memory(self, address: Address) -> Resolution | None:
        return self.from_memory(address)

    def is_local_domain(self, domain: str) -> bool:
        return domain == "example.org"

    def mailbox_quota(self, address: Address) -> int | None:
        return None


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions the handler ran in a worker thread."""
    seen: list[str] = []
    real = Workers.run

    async def run(self: Workers, fn: Callable[..., Any], *args: Any) -> Any:
        seen.append(fn.__name__)
        return await real(self, fn, *args)

    monkeypatch.setattr(Workers, "run", run)
    return seen


async def rcpt(directory: object, tmp_path: Path, address: Address) -> tuple[Reply, LmtpHandler]:
    handler = LmtpHandler(directory, MaildirStore(tmp_path))  # type: ignore[arg-type]
    try:
        await handler.on_mail(PEER, ENVELOPE)
        return await handler.on_rcpt(PEER, ENVELOPE, address), handler
    finally:
        handler.close()


async def test_a_local_account_from_memory_needs_no_thread(tmp_path: Path, hops: list[str]) -> None:
    directory = Directory(lambda a: Resolution(ResolutionKind.LOCAL, ALICE) if a == ALICE else None)
    reply, handler = await rcpt(directory, tmp_path, ALICE)
    assert reply == replies.RECIPIENT_OK and hops == [] and directory.resolved == []
    assert handler._sessions["s1"].plans[0].mailboxes == (ALICE,)


@pytest.mark.parametrize("answer", ["none", "alias", "refusal", "error"])
async def test_anything_else_is_asked_in_a_thread(tmp_path: Path, hops: list[str], answer: str) -> None:
    def from_memory(address: Address) -> Resolution | None:
        if answer == "error":
            raise RuntimeError("snapshot broken")
        return {"none": None, "alias": Resolution(ResolutionKind.ALIAS, LIST, targets=(ALICE,)),
                "refusal": Resolution(ResolutionKind.UNKNOWN_USER, NOBODY)}[answer]

    directory = Directory(from_memory)
    address = {"none": ALICE, "alias": LIST, "refusal": NOBODY, "error": ALICE}[answer]
    reply, handler = await rcpt(directory, tmp_path, address)
    assert hops == ["_mailboxes_of"] and directory.resolved == [address]
    if answer == "refusal":
        assert reply == replies.UNKNOWN_USER  # confirmed by `resolve`, never from memory alone
    else:
        assert reply == replies.RECIPIENT_OK and handler._sessions["s1"].plans[0].mailboxes == (ALICE,)


async def test_a_directory_without_it_is_asked_in_a_thread(tmp_path: Path, hops: list[str]) -> None:
    class Plain(Directory):
        resolve_from_memory = None  # type: ignore[assignment]

    directory = Plain(lambda a: None)
    reply, _ = await rcpt(directory, tmp_path, ALICE)
    assert reply == replies.RECIPIENT_OK and hops == ["_mailboxes_of"]
