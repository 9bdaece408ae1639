"""Direct delivery (mailbox/direct.py) against the LMTP link it replaces in the all-in-one process.

The same real MDA (a directory on SQLite, Maildirs in tmp_path) gets each request twice, once through the
gateway's LMTP client over mutual TLS and once through `DirectAgent` on its handler, under two queue ids:
the outcomes (kind, code, enhanced status, text) and the stored copies must be the same, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mda_testkit import Mda, client_context

from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.verdict import Folder
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
from mailbastion.mailbox.direct import DirectAgent

MESSAGE = (b"From: sender@remote.net\r\nTo: alice@example.org\r\nSubject: test\r\n"
           b"Message-ID: <1@remote.net>\r\nX-Mailbastion-Verdict: internal, never stored\r\n\r\n"
           b"Hello Alice.\r\n.a line that starts with a dot\r\n")
_counter = iter(range(10**6))


def qid() -> str:
    return f"00062700D1{next(_counter):08X}"


def request(*rcpts: str, sender: str = "sender@remote.net", folder: Folder = Folder.INBOX,
            message: bytes = MESSAGE, queue_id: str | None = None, bounce_of: tuple[str, ...] = (),
            smtputf8: bool = False) -> DeliveryRequest:
    return DeliveryRequest(queue_id or qid(), sender, tuple(DeliveryRecipient(r) for r in rcpts), message,
                           folder=folder, bounce_of=bounce_of, smtputf8=smtputf8)


def copies(mda: Mda) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in mda.mail.rglob("*") if p.is_file() and p.parent.name in ("new", "cur")}


def shape(outcomes: dict[str, DeliveryOutcome]) -> dict[str, tuple[str, int, str, str]]:
    return {a: (type(o).__name__, o.reply.code, o.reply.status, o.reply.text) for a, o in outcomes.items()}


def lmtp_agent(mda: Mda) -> LmtpDeliveryAgent:
    return LmtpDeliveryAgent("127.0.0.1", mda.port, ssl_context=client_context(mda.pki), server_hostname="mda",
                             timeout=10, connect_timeout=5)


async def both(mda: Mda, make: Callable[[], DeliveryRequest]
               ) -> tuple[dict[str, DeliveryOutcome], dict[str, DeliveryOutcome],
                          list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """`make()` -> a request; delivered over LMTP then directly, each with its own queue id: (the two
    outcome maps, the copies each wrote, sorted)."""
    link, direct = lmtp_agent(mda), DirectAgent(mda.server.handler)
    try:
        before = copies(mda)
        over_link = await link.deliver(make())
        middle = copies(mda)
        here = await direct.deliver(make())
        after = copies(mda)
    finally:
        await link.close()
    return (over_link, here, _new(mda, before, middle), _new(mda, middle, after))


def _new(mda: Mda, before: dict[Path, bytes], after: dict[Path, bytes]) -> list[tuple[str, bytes]]:
    """The copies written between two looks: (the Maildir folder they are in, their bytes), sorted."""
    return sorted((str(p.parent.relative_to(mda.mail)), v) for p, v in after.items() if p not in before)


CASES: dict[str, Callable[[], DeliveryRequest]] = {
    "one recipient": lambda: request("alice@example.org"),
    "two and an unknown": lambda: request("alice@example.org", "nobody@example.org", "bob@example.org"),
    "junk": lambda: request("alice@example.org", "bob@example.org", folder=Folder.JUNK),
    "null sender": lambda: request("alice@example.org", sender=""),
    "bare postmaster": lambda: request("Postmaster", "bob@example.org"),
    "foreign domain": lambda: request("alice@elsewhere.example"),
    "plus tag and case": lambda: request("Alice+news@EXAMPLE.org"),
    "same mailbox twice": lambda: request("alice@example.org", "ALICE@example.org"),
    "bare line feeds": lambda: request("bob@example.org", message=MESSAGE.replace(b"\r\n", b"\n")),
    "no final line end": lambda: request("bob@example.org", message=MESSAGE.rstrip(b"\r\n")),
    "utf8 recipient refused": lambda: request("jörg@example.org", smtputf8=True),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_direct_delivery_is_the_link_without_the_link(mda: Mda, case: str) -> None:
    over_link, here, link_copies, direct_copies = await both(mda, CASES[case])
    assert shape(here) == shape(over_link)
    assert direct_copies == link_copies
    assert link_copies or not any(isinstance(o, Delivered) for o in here.values())
    assert set(here) == {r.address for r in CASES[case]().recipients}


async def test_bad_addresses_get_the_replies_the_lmtp_server_gives(mda: Mda) -> None:
    """Addresses the LMTP server's own parser refuses (a queue entry never holds one: this proves the
    agent never raises on them and answers as the server would)."""
    over_link, here, link_copies, direct_copies = await both(
        mda, lambda: request("not an address", "bob@example.org"))
    assert shape(here) == shape(over_link)
    assert isinstance(here["not an address"], Failed) and here["not an address"].reply.status == "5.1.3"
    assert isinstance(here["bob@example.org"], Delivered) and direct_copies == link_copies
    bad_sender = await DirectAgent(mda.server.handler).deliver(request("bob@example.org", sender="a@@b"))
    link = lmtp_agent(mda)
    try:
        assert shape(bad_sender) == shape(await link.deliver(request("bob@example.org", sender="a@@b")))
    finally:
        await link.close()
    assert bad_sender["bob@example.org"].reply.status == "5.1.7"


async def test_a_queue_id_is_delivered_once(mda: Mda) -> None:
    direct = DirectAgent(mda.server.handler)
    again = request("alice@example.org", "bob@example.org")
    first = await direct.deliver(again)
    stored = copies(mda)
    second = await direct.deliver(again)
    assert all(isinstance(o, Delivered) for o in (*first.values(), *second.values()))
    assert copies(mda) == stored and len(stored) == 2
    link = lmtp_agent(mda)  # the journal is the MDA's: the link, given the same queue id, writes nothing either
    try:
        third = await link.deliver(again)
    finally:
        await link.close()
    assert all(isinstance(o, Delivered) for o in third.values()) and copies(mda) == stored


async def test_bounce_senders_are_told_once(mda: Mda) -> None:
    told: list[tuple[str, str]] = []
    mda.server.handler.bounce_listeners = [lambda sender, line: told.append((sender, line))]
    direct = DirectAgent(mda.server.handler)
    dsn = request("alice@example.org", sender="", bounce_of=("bob@example.org", "carol,x@example.org"))
    await direct.deliver(dsn)
    await direct.deliver(dsn)  # a retry of the same queue id writes nothing and tells nobody again
    assert [s for s, _ in told] == ["bob@example.org", "carol,x@example.org"]
    assert all(dsn.queue_id in line for _, line in told)


async def test_a_fault_of_the_mda_defers_every_recipient(mda: Mda, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(mda.server.handler, "_deliver_all", broken)
    out = await DirectAgent(mda.server.handler).deliver(request("alice@example.org", "nobody@example.org"))
    assert isinstance(out["alice@example.org"], Deferred) and out["alice@example.org"].reply.code == 451
    assert isinstance(out["nobody@example.org"], Deferred)  # the transaction failed: nothing is decided
    assert copies(mda) == {}
