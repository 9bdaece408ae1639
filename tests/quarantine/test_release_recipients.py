"""A released message never goes back to an outside sender: recipients that cannot receive are refused,
and failure notices of the released copy go to our postmaster. Against the gateway's real recipient map."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Action, Forced, ScoredSymbol, Verdict
from mailbastion.directory.recipient_map import RecipientMap, write_map
from mailbastion.quarantine import QuarantineRelease, QuarantineStore, ReleaseRefused
from mailbastion.quarantine.release import released_envelope

PHISHER = Address("billing", "paypa1-secure.example")
ALICE, BOB = Address("alice", "example.org"), Address("bob", "example.org")
MESSAGE = b"From: billing@paypa1-secure.example\r\nSubject: Invoice\r\n\r\npay here\r\n"
PHISH = Verdict(Action.QUARANTINE, 11.0, (ScoredSymbol("PHISH_LINK_MISMATCH", "", 11.0, "spam"),),
                Forced(Action.QUARANTINE, replies.OK, "spam"))


class Audit:
    def __init__(self) -> None:
        self.actions: list[str] = []

    def record(self, action: str, **kw: object) -> int:
        self.actions.append(action)
        return len(self.actions)


class Spool:
    def __init__(self) -> None:
        self.committed: list[Envelope] = []

    async def commit(self, envelope: Envelope, message: bytes, **kw: object) -> str:
        self.committed.append(envelope)
        return f"Q{len(self.committed)}"


def recipient_map(tmp_path: Path, *, addresses: tuple[str, ...], aliases: dict[str, tuple[str, ...]] | None = None,
                  domains: tuple[str, ...] = ("example.org",)) -> RecipientMap:
    path = tmp_path / "recipient-map.json"
    write_map(path, domains=domains, addresses=addresses, aliases=aliases or {})
    return RecipientMap(path)


async def test_inactive_recipient_refuses_the_release(tmp_path: Path) -> None:
    directory = recipient_map(tmp_path, addresses=("alice@example.org", "postmaster@example.org"))  # bob left
    store, audit, spool = QuarantineStore(tmp_path / "q"), Audit(), Spool()
    qid = await store.put(Envelope(PHISHER, (ALICE, BOB)), MESSAGE, PHISH, client="192.0.2.9")
    api = QuarantineRelease(store, spool, audit, directory)
    with pytest.raises(ReleaseRefused) as refused:
        await api.release(qid, actor="admin")
    assert "bob@example.org" in str(refused.value) and "alice" not in str(refused.value)
    assert "--to" in str(refused.value)
    assert spool.committed == [] and audit.actions == [] and store.get(qid)  # nothing done, still held
    # to someone who can receive it, it goes; and failure notices go to our postmaster, not the phisher
    assert await api.release(qid, actor="admin", recipients=[ALICE]) == "Q1"
    assert spool.committed[0].recipients == (ALICE,)
    assert spool.committed[0].sender == Address("postmaster", "example.org")
    assert audit.actions == ["quarantine.release"]


def test_alias_without_active_target_is_refused(tmp_path: Path) -> None:
    directory = recipient_map(tmp_path, addresses=("alice@example.org",),
                              aliases={"sales@example.org": ("bob@example.org",)})
    with pytest.raises(ReleaseRefused, match="sales@example.org"):
        released_envelope(Envelope(PHISHER, (Address("sales", "example.org"),)), directory)


def test_who_hears_of_a_failure(tmp_path: Path) -> None:
    directory = recipient_map(tmp_path, addresses=("alice@example.org", "carol@example.net"),
                              aliases={"postmaster@example.net": ("carol@example.net",)},
                              domains=("example.org", "example.net"))
    # outside sender, no postmaster in example.org but one (an alias) in example.net
    env = released_envelope(Envelope(PHISHER, (ALICE, Address("carol", "example.net"))), directory)
    assert env.sender == Address("postmaster", "example.net") and env.recipients[0] == ALICE
    # no postmaster anywhere: the null sender, so nobody outside hears of it
    assert released_envelope(Envelope(PHISHER, (ALICE,)), directory).sender is None
    # our own user's message keeps its sender (a notice stays inside); so does a bounce (null sender)
    assert released_envelope(Envelope(ALICE, (Address("x", "remote.example"),)), directory).sender == ALICE
    assert released_envelope(Envelope(None, (ALICE,)), directory).sender is None
