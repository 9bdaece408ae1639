"""SPF check: every RFC 7208 result as a symbol, the HELO identity for the null sender, limits in count
and time, and the event loop never blocked. DNS is a real server on loopback."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "auth"))

import authkit
from authkit import Rig, message, names

from mailbastion.auth.spf import SpfEvaluator, SpfResult
from mailbastion.dns.resolver import DnsResolver

dns_server, resolver, rig = authkit.dns_server, authkit.resolver, authkit.rig  # fixtures

MSG = message("Alice <alice@example.org>")


async def _spf(rig: Rig, txt: str | None, *, ip: str = "192.0.2.10") -> set[str]:
    if txt is not None:
        rig.dns.add("example.org", "TXT", txt)
    verdict, ctx = await rig.judge(MSG, ip=ip)
    assert ctx.get(SpfResult) is not None
    return {n for n in names(verdict) if n.startswith("R_SPF")}


async def test_pass(rig: Rig) -> None:
    assert await _spf(rig, "v=spf1 ip4:192.0.2.0/24 -all") == {"R_SPF_ALLOW"}


async def test_fail(rig: Rig) -> None:
    assert await _spf(rig, "v=spf1 ip4:198.51.100.1 -all") == {"R_SPF_FAIL"}


async def test_softfail(rig: Rig) -> None:
    assert await _spf(rig, "v=spf1 ~all") == {"R_SPF_SOFTFAIL"}


async def test_neutral(rig: Rig) -> None:
    assert await _spf(rig, "v=spf1 ?all") == {"R_SPF_NEUTRAL"}


async def test_none(rig: Rig) -> None:
    rig.dns.add("example.org", "A", "192.0.2.99")
    assert await _spf(rig, None) == {"R_SPF_NA"}


async def test_permerror_on_syntax(rig: Rig) -> None:
    assert await _spf(rig, "v=spf1 ip4:192.0.2.300 -all") == {"R_SPF_PERMFAIL"}


async def test_temperror_on_servfail(rig: Rig) -> None:
    rig.dns.fail("example.org")
    assert await _spf(rig, None) == {"R_SPF_DNSFAIL"}


async def test_include_and_mx(rig: Rig) -> None:
    rig.dns.add("_spf.provider.test", "TXT", "v=spf1 ip4:203.0.113.0/24 -all")
    rig.dns.add("example.org", "MX", "10 mx.example.org")
    rig.dns.add("mx.example.org", "A", "192.0.2.25")
    txt = "v=spf1 mx include:_spf.provider.test -all"
    assert await _spf(rig, txt, ip="203.0.113.7") == {"R_SPF_ALLOW"}
    assert await _spf(rig, None, ip="192.0.2.25") == {"R_SPF_ALLOW"}


async def test_ten_lookup_limit_is_permerror(rig: Rig) -> None:
    # RFC 7208 §4.6.4: more than 10 DNS-querying terms is a permerror.
    for i in range(11):
        rig.dns.add(f"l{i}.example.org", "TXT", f"v=spf1 include:l{i + 1}.example.org -all")
    rig.dns.add("l11.example.org", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    assert await _spf(rig, "v=spf1 include:l0.example.org -all") == {"R_SPF_PERMFAIL"}
    asked = {q for q, _t in rig.dns.queries if q.startswith("l")}
    assert len(asked) <= 11


async def test_void_lookup_limit(rig: Rig) -> None:
    # RFC 7208 §4.6.4: more than two lookups answering nothing is a permerror.
    assert await _spf(rig, "v=spf1 a:n1.example.org a:n2.example.org a:n3.example.org -all") == {"R_SPF_PERMFAIL"}


async def test_null_sender_judges_helo(rig: Rig) -> None:
    rig.dns.add("mail.example.org", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    verdict, ctx = await rig.judge(MSG, sender=None, helo="mail.example.org")
    result = ctx.get(SpfResult)
    assert result is not None and (result.identity, result.domain, result.result) == ("helo", "mail.example.org",
                                                                                       "pass")
    assert {"R_SPF_ALLOW", "R_SPF_HELO"} <= names(verdict)


async def test_timeout_is_temperror_within_deadline_and_loop_stays_free(dns_server, resolver) -> None:
    dns_server.drop("slow.test")
    evaluator = SpfEvaluator(resolver, timeout=1.0)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    result = await evaluator.evaluate(ip="192.0.2.1", sender="a@slow.test", helo="x.test")
    elapsed = time.monotonic() - started
    task.cancel()
    assert result.result == "temperror"
    assert elapsed < 1.5
    assert ticks >= 20  # the loop ran other work the whole time


async def test_cached_second_evaluation_asks_nothing(dns_server, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 include:_spf.provider.test -all")
    dns_server.add("_spf.provider.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    evaluator = SpfEvaluator(resolver)
    first = await evaluator.evaluate(ip="192.0.2.1", sender="a@example.org", helo="x.test")
    before = resolver.queries
    second = await evaluator.evaluate(ip="192.0.2.2", sender="b@example.org", helo="x.test")
    assert first.result == second.result == "pass"
    assert resolver.queries == before  # TTL cache: no network


async def test_concurrent_evaluations_do_not_mix(dns_server, resolver: DnsResolver) -> None:
    for i in range(20):
        dns_server.add(f"d{i}.test", "TXT", f"v=spf1 ip4:10.0.0.{i} -all")
    evaluator = SpfEvaluator(resolver)
    results = await asyncio.gather(*(evaluator.evaluate(ip=f"10.0.0.{i}", sender=f"a@d{i}.test", helo="h.test")
                                     for i in range(20)))
    assert [r.result for r in results] == ["pass"] * 20


async def test_started_at_mail_collected_at_data(rig: Rig) -> None:
    from mailbastion.core.address import parse_address
    from mailbastion.core.envelope import Envelope
    from mailbastion.core.message import SpooledMessage
    from mailbastion.core.peer import PeerInfo
    from mailbastion.core.stages import Stage
    from mailbastion.policy.check import CheckContext
    from mailbastion.policy.checks.spf import SpfPending

    rig.dns.add("example.org", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    pipe = rig.pipeline()
    peer = PeerInfo(ip="192.0.2.10", helo="mail.example.org")
    env = Envelope(parse_address("alice@example.org"), helo="mail.example.org")
    facts: dict[type, object] = {}
    mail = await pipe.run_stage(CheckContext(Stage.MAIL, peer, env, facts=facts))
    assert mail.symbols == () and mail.forced is None  # MAIL is answered at once
    pending = facts[SpfPending]
    assert isinstance(pending, SpfPending)
    await asyncio.sleep(0.2)
    assert pending.task.done()  # the lookups ran while the client sent RCPT and DATA
    queries = len(rig.dns.queries)
    data = await pipe.run_stage(CheckContext(Stage.DATA, peer, env, message=SpooledMessage(MSG), facts=facts))
    assert "R_SPF_ALLOW" in {s.name for s in data.symbols}
    assert rig.dns.queries[queries:] == [("_dmarc.example.org", "TXT")]  # DMARC's question only, not SPF's again
