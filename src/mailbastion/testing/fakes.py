"""In-package fakes for fast unit tests of the SMTP edge and the gateway handler.

    spool = FakeSpool()                                   # records commits; FakeSpool(full=True) raises SpoolFull
    recipients = FakeRecipients({"alice@example.net": "local", "bob@example.net": "disabled",
                                 "team@example.net": ["alice@example.net", "carol@example.org"]})
    quarantine = FakeQuarantine()

FakeRecipients answers as the real recipient map does: a deactivated account is UNKNOWN_USER, plus
tags (`alice+x@`) resolve to their base address, domains compare case-insensitively.
Flow tests use the real spool and directory instead.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailbastion.core.address import Address, parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import SpoolFull
from mailbastion.core.ports import Resolution, ResolutionKind
from mailbastion.core.verdict import Folder, Verdict

__all__ = ["Commit", "FakeQuarantine", "FakeRecipients", "FakeSpool", "Held"]


@dataclass(frozen=True, slots=True)
class Commit:
    queue_id: str
    envelope: Envelope
    message: bytes
    client: str
    verdict: Verdict | None
    folder: Folder  # as the real spool derives it: verdict.folder, INBOX without a verdict
    hops: int


class FakeSpool:
    """A SpoolWriter that keeps commits in memory. `full=True`: every commit raises SpoolFull.
    `delay` seconds of sleep per commit, to hold transactions open (drain tests)."""

    def __init__(self, *, full: bool = False, delay: float = 0.0) -> None:
        self.full = full
        self.delay = delay
        self.commits: list[Commit] = []
        self._ids = itertools.count(1)

    async def commit(self, envelope: Envelope, message: bytes, *, client: str, verdict: Verdict | None = None,
                     hops: int = 0) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.full:
            raise SpoolFull("fake spool is full")
        queue_id = f"Q{next(self._ids):06d}"
        folder = verdict.folder if verdict is not None else Folder.INBOX
        self.commits.append(Commit(queue_id, envelope, message, client, verdict, folder, hops))
        return queue_id


@dataclass(frozen=True, slots=True)
class Held:
    quarantine_id: str
    envelope: Envelope
    message: bytes
    verdict: Verdict
    client: str


class FakeQuarantine:
    def __init__(self) -> None:
        self.held: list[Held] = []
        self._ids = itertools.count(1)

    async def put(self, envelope: Envelope, message: bytes, verdict: Verdict, *, client: str) -> str:
        qid = f"H{next(self._ids):06d}"
        self.held.append(Held(qid, envelope, message, verdict, client))
        return qid


class FakeRecipients:
    """A RecipientResolver from a dict: address → "local" | "disabled" | [alias targets]."""

    def __init__(self, entries: Mapping[str, str | Iterable[str]], *, domains: Iterable[str] = ()) -> None:
        self._entries: dict[str, str | tuple[Address, ...]] = {}
        found_domains = {d.lower() for d in domains}
        for text, value in entries.items():
            addr = parse_address(text)
            found_domains.add(addr.domain)
            if isinstance(value, str):
                if value not in ("local", "disabled"):
                    raise ValueError(f"{text}: expected 'local', 'disabled' or a list of targets")
                self._entries[addr.normalized] = value
            else:
                self._entries[addr.normalized] = tuple(parse_address(t) for t in value)
        self.domains = frozenset(found_domains)

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains

    def resolve(self, address: Address) -> Resolution:
        if not self.is_local_domain(address.domain):
            return Resolution(ResolutionKind.UNKNOWN_DOMAIN, address)
        entry = self._entries.get(address.normalized)
        if entry is None:
            entry = self._entries.get(address.without_tag().normalized)
        if entry is None or entry == "disabled":
            return Resolution(ResolutionKind.UNKNOWN_USER, address)
        if entry == "local":
            return Resolution(ResolutionKind.LOCAL, address)
        assert isinstance(entry, tuple)
        return Resolution(ResolutionKind.ALIAS, address, entry)
