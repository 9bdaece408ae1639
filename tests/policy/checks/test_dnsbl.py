"""DNS blocklists against a real DNS server on loopback (DnsTestServer): listed, not listed, refused,
and a list that does not answer fails open with a symbol saying so."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "spam"))

from spamkit import context, judge, mail, names

from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action
from mailbastion.dns.resolver import DnsResolver
from mailbastion.policy.checks.dnsbl import Blocklist, DnsblClientCheck, DnsblDomainCheck, reversed_ip
from mailbastion.testing.dns_server import DnsTestServer

LISTED_IP = "198.51.100.99"
CLEAN_IP = "198.51.100.7"


@pytest.fixture
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        server.add(f"{reversed_ip(LISTED_IP)}.rbl.test", "A", "127.0.0.2")
        server.add("bad-pharma.example.dbl.test", "A", "127.0.1.2")
        server.add(f"{reversed_ip('198.51.100.50')}.refusing.test", "A", "127.255.255.254")
        server.drop(f"{reversed_ip(CLEAN_IP)}.dead.test")
        server.drop(f"{reversed_ip(LISTED_IP)}.dead.test")
        server.drop("bad-pharma.example.deaddbl.test")
        yield server


@pytest.fixture
def resolver(dns: DnsTestServer) -> DnsResolver:
    return DnsResolver([dns.host], port=dns.port, timeout=3.0)


async def connect(check: DnsblClientCheck, ip: str) -> tuple[set[str], object]:
    ctx = context(b"", ip=ip, stage=Stage.CONNECT)
    result = await check(ctx)
    return {s.name for s in result.symbols}, result.forced


async def test_listed_client_gets_the_list_symbol(resolver: DnsResolver) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("rbl.test", "RBL_LISTED")])
    found, forced = await connect(check, LISTED_IP)
    assert found == {"RBL_LISTED"}
    assert forced is None  # scored, not refused, by default


async def test_listed_client_symbol_carries_zone_and_answer(resolver: DnsResolver) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("rbl.test", "RBL_SPAMHAUS_ZEN")])
    result = await check(context(b"", ip=LISTED_IP, stage=Stage.CONNECT))
    assert result.symbols[0].detail.endswith("rbl.test=127.0.0.2")


async def test_clean_client_has_no_symbol(resolver: DnsResolver) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("rbl.test", "RBL_LISTED")])
    assert (await connect(check, CLEAN_IP))[0] == set()


async def test_reject_listed_forces_a_554(resolver: DnsResolver) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("rbl.test", "RBL_LISTED")], reject_listed=True)
    _found, forced = await connect(check, LISTED_IP)
    assert forced is not None and forced.action is Action.REJECT and forced.by == "dnsbl_client"  # type: ignore[attr-defined]


async def test_answers_filter(resolver: DnsResolver) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("rbl.test", "RBL_LISTED", answers=("127.0.0.4",))])
    assert (await connect(check, LISTED_IP))[0] == set()


async def test_refused_answer_is_not_a_listing(resolver: DnsResolver) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("refusing.test", "RBL_LISTED")])
    assert (await connect(check, "198.51.100.50"))[0] == {"DNSBL_REFUSED"}


async def test_silent_blocklist_fails_open_with_a_symbol(resolver: DnsResolver) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("dead.test", "RBL_LISTED"), Blocklist("rbl.test", "RBL_LISTED")],
                             timeout=0.5)
    t0 = time.monotonic()
    found, forced = await connect(check, LISTED_IP)
    assert time.monotonic() - t0 < 2.5
    assert found == {"DNSBL_UNREACHABLE", "RBL_LISTED"}  # the live list still counts
    assert forced is None
    # The dead zone is paused: the next client does not wait for it again.
    t0 = time.monotonic()
    found, _ = await connect(check, CLEAN_IP)
    assert found == {"DNSBL_UNREACHABLE"} and time.monotonic() - t0 < 0.4


async def test_unreachable_blocklist_verdict_accepts(resolver: DnsResolver) -> None:
    check = DnsblDomainCheck(resolver, [Blocklist("deaddbl.test", "URIBL_LISTED")], timeout=0.5)
    verdict, _ = await judge([check], mail(text="Buy at http://www.bad-pharma.example/now"))
    assert "DNSBL_UNREACHABLE" in names(verdict)
    assert verdict.action is Action.ACCEPT


async def test_private_and_relay_clients_are_not_looked_up(resolver: DnsResolver, dns: DnsTestServer) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("rbl.test", "RBL_LISTED")])
    dns.queries.clear()
    assert (await connect(check, "10.1.2.3"))[0] == set()
    ctx = context(b"", ip=LISTED_IP, relay=True, stage=Stage.CONNECT)
    assert (await check(ctx)).symbols == ()
    assert dns.queries == []


async def test_url_domain_on_a_domain_list(resolver: DnsResolver) -> None:
    check = DnsblDomainCheck(resolver, [Blocklist("dbl.test", "URIBL_SPAMHAUS_DBL")])
    raw = mail(text="Cheap pills at http://shop.bad-pharma.example/buy and https://docs.python.org/")
    verdict, _ = await judge([check], raw)
    assert "URIBL_SPAMHAUS_DBL" in names(verdict)
    assert verdict.score >= 5.0


async def test_answers_are_cached(resolver: DnsResolver, dns: DnsTestServer) -> None:
    check = DnsblClientCheck(resolver, [Blocklist("rbl.test", "RBL_LISTED")])
    await connect(check, LISTED_IP)
    n = len(dns.queries)
    await connect(check, LISTED_IP)
    assert len(dns.queries) == n


def test_reversed_ipv6() -> None:
    assert reversed_ip("2001:db8::1").startswith("1.0.0.0.") and reversed_ip("2001:db8::1").endswith("8.b.d.0.1.0.0.2")
