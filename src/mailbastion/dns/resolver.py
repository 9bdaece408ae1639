"""An async DNS resolver with a TTL cache, bounded in time, on dnspython. Nothing blocks the event loop.

    result = await resolver.lookup("example.org", "TXT")
    result.records   -> ["v=spf1 -all"]  (strings; TXT strings of one record joined)
    result.nxdomain  -> True when the name does not exist
Raises LookupTimeout on a timeout or SERVFAIL: callers decide whether that fails open or closed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailbastion.core.errors import LookupTimeout


@dataclass(frozen=True, slots=True)
class LookupResult:
    name: str
    rdtype: str
    records: tuple[str, ...] = ()
    nxdomain: bool = False
    ttl: int = 0


class DnsResolver:
    def __init__(
        self,
        nameservers: list[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 5.0,
        cache_size: int = 10000,
        min_ttl: int = 0,
        max_ttl: int = 86400,
        negative_ttl: int = 300,
    ) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self.timeout = timeout
        self._cache: OrderedDict[tuple[str, str], tuple[float, LookupResult]] = OrderedDict()
        self._cache_size = cache_size
        self._min_ttl, self._max_ttl, self._negative_ttl = min_ttl, max_ttl, negative_ttl
        self._inflight: dict[tuple[str, str], asyncio.Future[LookupResult]] = {}
        self.queries = 0  # lookups that went to the network (cache misses)

    @property
    def nameservers(self) -> list[str]:
        return [str(ns) for ns in self._resolver.nameservers]

    async def lookup(self, name: str, rdtype: str) -> LookupResult:
        key = (name.lower().rstrip("."), rdtype.upper())
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(key)
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[LookupResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._query(key[0], key[1])
            fut.set_result(result)
            ttl = result.ttl if result.records else self._negative_ttl
            ttl = max(self._min_ttl, min(self._max_ttl, ttl))
            if self._cache_size:
                self._cache[key] = (now + ttl, result)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return result
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            del self._inflight[key]

    async def _query(self, name: str, rdtype: str) -> LookupResult:
        self.queries += 1
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return LookupResult(name, rdtype, (), nxdomain=True)
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
            raise LookupTimeout(f"DNS timeout for {name}/{rdtype}") from exc
        except dns.resolver.NoNameservers as exc:
            raise LookupTimeout(f"DNS servers failed for {name}/{rdtype} (SERVFAIL)") from exc
        except dns.exception.DNSException as exc:
            raise LookupTimeout(f"DNS error for {name}/{rdtype}: {exc}") from exc
        if answer.rrset is None:
            return LookupResult(name, rdtype, (), ttl=self._negative_ttl)
        records: list[str] = []
        for rr in answer.rrset:
            if rr.rdtype == dns.rdatatype.TXT:
                records.append(b"".join(rr.strings).decode("utf-8", "replace"))
            elif rr.rdtype in (dns.rdatatype.MX,):
                records.append(f"{rr.preference} {rr.exchange.to_text(omit_final_dot=True)}")
            else:
                records.append(rr.to_text().rstrip(".") if rr.rdtype in (dns.rdatatype.PTR, dns.rdatatype.CNAME,
                                                                         dns.rdatatype.NS) else rr.to_text())
        return LookupResult(name, rdtype, tuple(records), ttl=answer.rrset.ttl)

    async def txt(self, name: str) -> list[str]:
        return list((await self.lookup(name, "TXT")).records)

    async def ptr(self, ip: str) -> list[str]:
        return list((await self.lookup(dns.reversename.from_address(ip).to_text(), "PTR")).records)

    def clear(self) -> None:
        self._cache.clear()
