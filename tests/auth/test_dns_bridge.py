"""dns_bridge: a synchronous evaluation replayed against a snapshot until every answer it needs is in."""

from __future__ import annotations

import time

import pytest

from mailbastion.auth.dns_bridge import MAX_ROUNDS, DnsSnapshot, DnsTemporaryError, run_with_snapshot
from mailbastion.core.errors import LookupTimeout
from mailbastion.dns.resolver import DnsResolver
from mailbastion.testing.dns_server import DnsTestServer


async def test_replays_until_complete(dns_server: DnsTestServer, resolver: DnsResolver) -> None:
    dns_server.add("a.test", "TXT", "next=b.test")
    dns_server.add("b.test", "TXT", "next=c.test")
    dns_server.add("c.test", "TXT", "end")
    runs = 0

    def walk(snap: DnsSnapshot) -> list[str]:
        nonlocal runs
        runs += 1
        out, name = [], "a.test"
        while True:
            rec = snap.answer(name, "TXT").records[0]
            out.append(rec)
            if not rec.startswith("next="):
                return out
            name = rec[5:]

    result, snap = await run_with_snapshot(resolver, walk, deadline=time.monotonic() + 5)
    assert result == ["next=b.test", "next=c.test", "end"] and runs == 4
    runs = 0
    again, _ = await run_with_snapshot(resolver, walk, deadline=time.monotonic() + 5, hint=list(snap.answers))
    assert again == result and runs == 1  # hinted: one run


async def test_swallowed_need_still_replays(dns_server: DnsTestServer, resolver: DnsResolver) -> None:
    # pyspf catches some exceptions with a bare `except:`; the record in `missing` still forces a replay.
    dns_server.add("x.test", "A", "192.0.2.1")

    def sloppy(snap: DnsSnapshot) -> int:
        try:
            return len(snap.answer("x.test", "A").records)
        except Exception:  # noqa: BLE001
            return -1

    result, _ = await run_with_snapshot(resolver, sloppy, deadline=time.monotonic() + 5)
    assert result == 1


async def test_failures_are_stored_and_raised_inside(dns_server: DnsTestServer, resolver: DnsResolver) -> None:
    dns_server.fail("bad.test")

    def ask(snap: DnsSnapshot) -> str:
        try:
            snap.answer("bad.test", "TXT")
        except DnsTemporaryError:
            return "temperror"
        return "answered"

    result, snap = await run_with_snapshot(resolver, ask, deadline=time.monotonic() + 5)
    assert result == "temperror" and snap.answers[("bad.test", "TXT")] is None


async def test_deadline(dns_server: DnsTestServer, resolver: DnsResolver) -> None:
    dns_server.drop("slow.test")
    started = time.monotonic()
    with pytest.raises(LookupTimeout):
        await run_with_snapshot(resolver, lambda s: s.answer("slow.test", "TXT"), deadline=started + 0.2)
    assert time.monotonic() - started < 0.5


async def test_rounds_are_bounded(dns_server: DnsTestServer, resolver: DnsResolver) -> None:
    calls = 0

    def endless(snap: DnsSnapshot) -> None:
        nonlocal calls
        calls += 1
        snap.answer(f"n{calls}.test", "A")  # a new name every round, as a hostile record could ask

    with pytest.raises(LookupTimeout, match="rounds"):
        await run_with_snapshot(resolver, endless, deadline=time.monotonic() + 30)
    assert calls == MAX_ROUNDS
