"""Run synchronous DNS-using libraries (pyspf, dkimpy) on the event loop without ever blocking it.

Why not a thread with a blocking bridge? A thread per evaluation would hold a pool slot for the whole
SPF walk while it waits on the loop, cannot be cancelled, and two caches would disagree. Instead the
library runs against a `DnsSnapshot`, an in-memory view of the answers fetched so far:

1. run the library synchronously; the snapshot answers what it holds;
2. a question it does not hold is recorded in `snapshot.missing` and `NeedLookup` is raised (pyspf
   swallows some exceptions with bare `except:`, so the record in `missing`, not the exception, is the
   signal that the run is void);
3. the async driver fetches every missing name concurrently through `DnsResolver` (TTL-cached, shared,
   bounded in time) and runs again.

Each run is pure CPU on data in memory (microseconds for SPF); a fresh snapshot needs one round per
level of the record's include tree, each round answered from the TTL cache when it is warm. `hint`
lets a caller pre-fetch the names a previous evaluation of the same domain needed, so a repeated
domain runs once. The number of rounds is bounded, and the whole evaluation by a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from mailbastion.core.errors import LookupTimeout
from mailbastion.dns.resolver import DnsResolver, LookupResult

T = TypeVar("T")
Key = tuple[str, str]  # (lower-case name without final dot, RR type)

MAX_ROUNDS = 40  # SPF needs at most ~1 + 10 mechanisms + 10 MX hosts + 2 void lookups


class NeedLookup(Exception):
    """Raised inside a library run for a question the snapshot does not hold yet."""

    def __init__(self, key: Key) -> None:
        super().__init__(f"{key[0]}/{key[1]}")
        self.key = key


class DnsTemporaryError(Exception):
    """Raised inside a library run for a question whose lookup failed temporarily."""


@dataclass(eq=False)
class DnsSnapshot:
    """Answers known so far for one evaluation. `answers[key]` is None when the lookup failed (temperror)."""

    answers: dict[Key, LookupResult | None] = field(default_factory=dict)
    missing: set[Key] = field(default_factory=set)

    @staticmethod
    def key(name: str | bytes, rdtype: str) -> Key:
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        return (name.lower().rstrip("."), rdtype.upper())

    def answer(self, name: str | bytes, rdtype: str) -> LookupResult:
        """The answer for (name, rdtype). Raises NeedLookup when unknown, DnsTemporaryError when it failed."""
        key = self.key(name, rdtype)
        if key not in self.answers:
            self.missing.add(key)
            raise NeedLookup(key)
        found = self.answers[key]
        if found is None:
            raise DnsTemporaryError(f"DNS lookup failed for {key[0]}/{key[1]}")
        return found


async def fetch(resolver: DnsResolver, snapshot: DnsSnapshot, keys: Iterable[Key]) -> None:
    """Fetch `keys` concurrently into the snapshot. A timeout or SERVFAIL is stored as None."""
    todo = [k for k in dict.fromkeys(keys) if k not in snapshot.answers]

    async def one(key: Key) -> None:
        try:
            snapshot.answers[key] = await resolver.lookup(key[0], key[1])
        except LookupTimeout:
            snapshot.answers[key] = None

    await asyncio.gather(*(one(k) for k in todo))


async def run_with_snapshot(
    resolver: DnsResolver,
    evaluate: Callable[[DnsSnapshot], T],
    *,
    deadline: float,
    hint: Iterable[Key] = (),
    snapshot: DnsSnapshot | None = None,
) -> tuple[T, DnsSnapshot]:
    """Call `evaluate(snapshot)` until it completes without a missing answer.

    `deadline` is a `time.monotonic()` instant. Raises LookupTimeout when the deadline passes or the
    number of rounds exceeds MAX_ROUNDS (a record designed to make us loop).
    """
    snap = snapshot or DnsSnapshot()
    if hint:
        try:
            await asyncio.wait_for(fetch(resolver, snap, hint), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise LookupTimeout("DNS evaluation deadline passed") from None
    for _ in range(MAX_ROUNDS):
        snap.missing.clear()
        try:
            result = evaluate(snap)
        except NeedLookup:
            pass
        else:
            if not snap.missing:
                return result, snap
        if not snap.missing:  # NeedLookup raised without a recorded key: a bug, not a DNS matter
            raise RuntimeError("evaluation asked for a lookup it did not record")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LookupTimeout("DNS evaluation deadline passed")
        try:
            await asyncio.wait_for(fetch(resolver, snap, set(snap.missing)), timeout=remaining)
        except TimeoutError:
            raise LookupTimeout("DNS evaluation deadline passed") from None
    raise LookupTimeout(f"DNS evaluation needed more than {MAX_ROUNDS} rounds")
