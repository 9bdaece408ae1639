"""Where mail for a domain goes: its MX hosts in the order to try, and their addresses (RFC 5321 §5.1).

    found = await mx_hosts(resolver, "example.org", max_hosts=5)
    found          -> MxHosts(domain, hosts=("mx1.example.org", "mx2.example.org"), implicit=False)
                   or a DeliveryOutcome that ends the attempt for the whole domain
    await host_addresses(resolver, "mx1.example.org")   -> ["192.0.2.1", "2001:db8::1"]

Rules:
  - MX records sorted by preference, lowest first; hosts of equal preference in random order, so that
    load spreads over them as their owner meant (RFC 5321 §5.1); at most `max_hosts` hosts (Postfix
    smtp_mx_session_limit); a host listed twice is tried once.
  - A null MX, "0 ." (RFC 7505 §3): the domain accepts no mail: permanent failure 556 5.1.10 (§4.1), and
    no implicit MX. A null MX next to other MX records is not a valid null MX: the others are used.
  - No MX records at all (NODATA): the domain itself is the implicit MX (RFC 5321 §5.1); if it has no
    address either, the domain cannot receive mail (permanent, 5.1.2 as Postfix's "host not found").
  - The domain does not exist (NXDOMAIN): permanent 5.1.2. A DNS timeout or SERVFAIL: deferred 4.4.3.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

from mailbastion.core.errors import LookupTimeout
from mailbastion.core.outcome import Deferred, DeliveryOutcome, Failed
from mailbastion.core.replies import Reply
from mailbastion.dns.resolver import DnsResolver

__all__ = ["MxHosts", "host_addresses", "is_ip", "mx_hosts", "rank_mx"]


@dataclass(frozen=True, slots=True)
class MxHosts:
    domain: str
    hosts: tuple[str, ...]
    implicit: bool = False  # the domain itself, for want of MX records


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def rank_mx(records: tuple[str, ...] | list[str], *, max_hosts: int,
            shuffle: Callable[[list[str]], None] = random.shuffle) -> list[str] | None:
    """MX records ("10 mx.example.org") -> host names in the order to try; None for a null MX. Records
    that do not parse are ignored (a broken record must not stop delivery to the others)."""
    ranked: list[tuple[int, str]] = []
    for rec in records:
        pref, _, exchange = rec.strip().partition(" ")
        try:
            number = int(pref)
        except ValueError:
            continue
        ranked.append((number, exchange.strip().rstrip(".").lower()))
    if not ranked:
        return []
    real = [(p, h) for p, h in ranked if h not in ("", "@")]
    if not real:
        return None  # RFC 7505: "0 ." alone
    real.sort(key=lambda r: r[0])
    out: list[str] = []
    for _, group in groupby(real, key=lambda r: r[0]):
        same = list(dict.fromkeys(h for _, h in group))
        shuffle(same)
        out += [h for h in same if h not in out]
    return out[:max_hosts]


async def mx_hosts(resolver: DnsResolver, domain: str, *, max_hosts: int = 5,
                   shuffle: Callable[[list[str]], None] = random.shuffle) -> MxHosts | DeliveryOutcome:
    """The hosts to try for `domain`, or the outcome that ends the attempt for every recipient there."""
    domain = domain.lower().rstrip(".")
    if domain.startswith("["):
        return Failed(Reply(550, "5.1.2", f"address literal {domain} is not delivered to"))
    try:
        mx = await resolver.lookup(domain, "MX")
    except LookupTimeout as exc:
        return Deferred(Reply(451, "4.4.3", f"MX lookup for {domain}: {exc}"))
    if mx.nxdomain:
        return Failed(Reply(550, "5.1.2", f"domain {domain} does not exist"))
    hosts = rank_mx(mx.records, max_hosts=max_hosts, shuffle=shuffle)
    if hosts is None:
        return Failed(Reply(556, "5.1.10", f"domain {domain} accepts no mail (null MX, RFC 7505)"))
    if hosts:
        return MxHosts(domain, tuple(hosts))
    # RFC 5321 §5.1: no MX at all, the domain itself is the implicit MX (if it has an address).
    found = await host_addresses(resolver, domain)
    if found is None:
        return Deferred(Reply(451, "4.4.3", f"address lookup for {domain} failed"))
    if not found:
        return Failed(Reply(550, "5.1.2", f"domain {domain} has no MX and no address records"))
    return MxHosts(domain, (domain,), implicit=True)


async def host_addresses(resolver: DnsResolver, host: str) -> list[str] | None:
    """A and AAAA addresses of `host` (IPv4 first), [] when it has none, None when both lookups failed."""
    if is_ip(host):
        return [host]
    found: list[str] = []
    failures = 0
    for rdtype in ("A", "AAAA"):
        try:
            found += (await resolver.lookup(host, rdtype)).records
        except LookupTimeout:
            failures += 1
    if failures == 2:
        return None
    return found
