"""DNS blocklists: the client address at CONNECT (RBL), the domains of the message's URLs at DATA (URIBL).

    client 192.0.2.99, zone zen.example  → A? 99.2.0.192.zen.example → 127.0.0.2 → RBL_LISTED(zen.example=127.0.0.2)
    URL http://bad.example/x, zone dbl.example → A? bad.example.dbl.example → URIBL_LISTED(...)

Answers are cached by the resolver (TTL). Fail open (guideline: a DNSBL that times out must not stop
mail): a lookup that times out or fails gives DNSBL_UNREACHABLE(zone) and nothing else, and the zone is
skipped for `pause` seconds so one dead list does not slow every message. Answers in 127.255.255.0/24 are
the lists' "query refused" codes (public resolver, over quota): DNSBL_REFUSED, never a listing.
A listed client is only scored, unless `reject_listed` (Forced 554 at CONNECT).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailbastion.core import replies
from mailbastion.core.errors import LookupTimeout
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import EMPTY, Action, CheckResult, Forced, Symbol
from mailbastion.dns.resolver import DnsResolver
from mailbastion.policy.check import BaseCheck, CheckContext
from mailbastion.spam.domains import registrable_domain
from mailbastion.spam.features import extract

CLIENT_SYMBOLS = frozenset({"RBL_SPAMHAUS_ZEN", "RBL_SPAMCOP", "RBL_LISTED"})
DOMAIN_SYMBOLS = frozenset({"URIBL_SPAMHAUS_DBL", "URIBL_SURBL", "URIBL_LISTED"})
STATUS_SYMBOLS = frozenset({"DNSBL_UNREACHABLE", "DNSBL_REFUSED"})
CLIENT_BLOCKLISTED = replies.REJECTED.with_text("Client host rejected: listed on a DNS blocklist")
_REFUSED_NET = ipaddress.ip_network("127.255.255.0/24")
_LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")
# Addresses no public list knows about: never sent to a blocklist (and not leaked to it).
_UNLISTABLE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10"))


@dataclass(frozen=True, slots=True)
class Blocklist:
    zone: str
    symbol: str
    answers: tuple[str, ...] = ()  # A records that count; empty = any 127/8 outside the refused range


def reversed_ip(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        return ".".join(reversed(ip.split(".")))
    return ".".join(reversed(addr.exploded.replace(":", "")))


class _Lookup:
    """Shared lookup logic: bounded in time, fail open, and a pause after a failure."""

    def __init__(self, resolver: DnsResolver, timeout: float, pause: float) -> None:
        self.resolver, self.timeout, self.pause = resolver, timeout, pause
        self._down_until: dict[str, float] = {}

    async def query(self, name: str, bl: Blocklist) -> Symbol | None:
        """The symbol for `name` on list `bl`, a status symbol, or None when not listed."""
        if self._down_until.get(bl.zone, 0.0) > time.monotonic():
            return Symbol("DNSBL_UNREACHABLE", f"{bl.zone} (paused)")
        try:
            result = await asyncio.wait_for(self.resolver.lookup(f"{name}.{bl.zone}", "A"), self.timeout)
        except (TimeoutError, LookupTimeout) as exc:
            self._down_until[bl.zone] = time.monotonic() + self.pause
            return Symbol("DNSBL_UNREACHABLE", f"{bl.zone}: {type(exc).__name__}")
        for answer in result.records:
            try:
                addr = ipaddress.ip_address(answer)
            except ValueError:
                continue
            if addr in _REFUSED_NET:
                return Symbol("DNSBL_REFUSED", f"{bl.zone}={answer}")
            if (answer in bl.answers) if bl.answers else (addr in _LOOPBACK_NET):
                return Symbol(bl.symbol, f"{name}.{bl.zone}={answer}"[:160])
        return None


class DnsblClientCheck(BaseCheck):
    name = "dnsbl_client"
    stage = Stage.CONNECT
    emits = CLIENT_SYMBOLS | STATUS_SYMBOLS
    on_error = Action.ACCEPT  # fail open: a blocklist is advice, not a safety gate
    timeout = 10.0
    priority = 50

    def __init__(self, resolver: DnsResolver, lists: Sequence[Blocklist], *, timeout: float = 2.0,
                 pause: float = 30.0, reject_listed: bool = False) -> None:
        self.lists = tuple(lists)
        self._lookup = _Lookup(resolver, timeout, pause)
        self.reject_listed = reject_listed

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        peer = ctx.peer
        if peer.may_relay or not self.lists:
            return EMPTY
        addr = peer.address
        if any(addr in net for net in _UNLISTABLE if net.version == addr.version):
            return EMPTY
        name = reversed_ip(peer.ip)
        found = await asyncio.gather(*(self._lookup.query(name, bl) for bl in self.lists))
        symbols = tuple(s for s in found if s is not None)
        listed = any(s.name in CLIENT_SYMBOLS for s in symbols)
        forced = Forced(Action.REJECT, CLIENT_BLOCKLISTED, by=self.name) if listed and self.reject_listed else None
        return CheckResult(symbols, forced)


class DnsblDomainCheck(BaseCheck):
    name = "dnsbl_uri"
    stage = Stage.DATA
    emits = DOMAIN_SYMBOLS | STATUS_SYMBOLS
    on_error = Action.ACCEPT
    timeout = 10.0
    priority = 40

    def __init__(self, resolver: DnsResolver, lists: Sequence[Blocklist], *, timeout: float = 2.0,
                 pause: float = 30.0, max_domains: int = 10, own_domains: frozenset[str] = frozenset()) -> None:
        self.lists = tuple(lists)
        self._lookup = _Lookup(resolver, timeout, pause)
        self.max_domains = max_domains
        self.own_domains = own_domains

    def domains(self, ctx: CheckContext) -> list[str]:
        assert ctx.message is not None
        out: dict[str, None] = {}
        for host in extract(ctx.message).url_hosts:
            try:
                ipaddress.ip_address(host)
                continue  # URL on an address: the URI_IP rule's business
            except ValueError:
                pass
            if "." not in host:
                continue
            dom = registrable_domain(host)
            if dom not in self.own_domains:
                out.setdefault(dom, None)
            if len(out) >= self.max_domains:
                break
        return list(out)

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None or not self.lists:
            return EMPTY
        domains = self.domains(ctx)
        found = await asyncio.gather(*(self._lookup.query(d, bl) for d in domains for bl in self.lists))
        seen: dict[tuple[str, str], Symbol] = {}
        for s in found:
            if s is not None:
                key = (s.name, s.detail if s.name in DOMAIN_SYMBOLS else s.detail.split(":")[0])
                seen.setdefault(key, s)
        return CheckResult(tuple(seen.values()))
