"""SPF (RFC 7208) through pyspf, the reference implementation, fed by our resolver.

    result = await SpfEvaluator(resolver).evaluate(ip="192.0.2.1", sender="a@example.org", helo="mx.example.org")
    result.result   -> "pass" | "fail" | "softfail" | "neutral" | "none" | "temperror" | "permerror"
    result.identity -> "mailfrom" | "helo";  result.domain -> the domain that was judged

pyspf keeps its own limits (RFC 7208 §4.6.4: 10 DNS-querying terms, 2 void lookups, 10 MX/PTR names);
our deadline bounds the whole evaluation in time. pyspf looks DNS up through the module function
`spf.DNSLookup`; we replace it once with a dispatcher that answers from the `DnsSnapshot` of the
evaluation running in this context (a ContextVar), so concurrent evaluations never see each other.
"""

from __future__ import annotations

import contextvars
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import spf as pyspf  # type: ignore[import-untyped]

from mailbastion.auth.dns_bridge import DnsSnapshot, DnsTemporaryError, Key, NeedLookup, run_with_snapshot
from mailbastion.core.address import Address
from mailbastion.core.errors import LookupTimeout
from mailbastion.dns.resolver import DnsResolver

_CURRENT: contextvars.ContextVar[DnsSnapshot | None] = contextvars.ContextVar("mailbastion_spf_snapshot", default=None)
_ORIGINAL_LOOKUP = pyspf.DNSLookup

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")


def _snapshot_lookup(name: str, qtype: str, strict: bool = True, timeout: float | None = None) -> Iterator[Any]:
    """pyspf's DNSLookup contract: [((name, qtype), value), ...]; raises pyspf.TempError on DNS failure."""
    snap = _CURRENT.get()
    if snap is None:  # someone else's pyspf use in this process: leave it as it was
        return iter(_ORIGINAL_LOOKUP(name, qtype, strict, timeout))
    if qtype not in ("A", "AAAA", "MX", "PTR", "TXT"):
        return iter(())  # RFC 7208 §3.1: the SPF RR type is no longer queried
    try:
        answer = snap.answer(name, qtype)
    except DnsTemporaryError as exc:
        raise pyspf.TempError(f"DNS {exc}") from None
    out: list[Any] = []
    key = (name.lower().rstrip("."), qtype)
    for rec in answer.records:
        if qtype == "MX":
            pref, _, host = rec.partition(" ")
            out.append((key, (int(pref), host)))
        elif qtype == "TXT":
            out.append((key, (rec.encode("utf-8", "surrogateescape"),)))
        else:
            out.append((key, rec))
    return iter(out)


pyspf.DNSLookup = _snapshot_lookup


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str  # one of RESULTS
    identity: str  # "mailfrom" or "helo" (RFC 7208 §2.3, §2.4)
    domain: str  # the domain whose policy was evaluated
    explanation: str = ""
    lookups: int = 0  # DNS questions this evaluation asked (for the benchmark and the logs)

    @property
    def is_pass(self) -> bool:
        return self.result == "pass"


class SpfEvaluator:
    """Evaluates check_host() for the MAIL FROM identity, or for HELO when the sender is null.

    Never raises for DNS trouble: a failed lookup or the deadline gives result "temperror".
    """

    def __init__(self, resolver: DnsResolver, *, timeout: float = 15.0, hint_cache: int = 4096,
                 default_explanation: str | None = None) -> None:
        self.resolver = resolver
        self.default_explanation = default_explanation
        self.timeout = timeout
        self._hints: OrderedDict[str, tuple[Key, ...]] = OrderedDict()
        self._hint_cache = hint_cache

    async def evaluate(self, *, ip: str, sender: Address | str | None, helo: str) -> SpfResult:
        helo = helo.strip().rstrip(".")
        if sender:
            mailfrom, identity = str(sender), "mailfrom"
        else:
            # RFC 7208 §2.4: for the null reverse-path, check "postmaster@<HELO>".
            mailfrom, identity = f"postmaster@{helo}", "helo"
        domain = (mailfrom.rpartition("@")[2] if "@" in mailfrom else helo).lower()
        return await self._check(ip=ip, mailfrom=mailfrom, helo=helo, identity=identity, domain=domain)

    async def check_helo(self, *, ip: str, helo: str) -> SpfResult:
        """The HELO identity on its own (RFC 7208 §2.3), e.g. for the A-R header of a null sender."""
        helo = helo.strip().rstrip(".")
        return await self._check(ip=ip, mailfrom=f"postmaster@{helo}", helo=helo, identity="helo", domain=helo.lower())

    async def _check(self, *, ip: str, mailfrom: str, helo: str, identity: str, domain: str) -> SpfResult:
        def run(snap: DnsSnapshot) -> tuple[str, str]:
            token = _CURRENT.set(snap)
            try:
                q = pyspf.query(i=ip, s=mailfrom, h=helo, strict=True)
                if self.default_explanation is not None:
                    q.set_default_explanation(self.default_explanation)
                res, _code, exp = q.check()
                return str(res), str(exp)
            finally:
                _CURRENT.reset(token)

        deadline = time.monotonic() + self.timeout
        try:
            (res, exp), snap = await run_with_snapshot(
                self.resolver, run, deadline=deadline, hint=self._hints.get(domain, ())
            )
        except LookupTimeout as exc:
            return SpfResult("temperror", identity, domain, str(exc))
        res = {"error": "temperror", "unknown": "permerror", "ambiguous": "permerror"}.get(res, res)
        self._remember(domain, tuple(snap.answers))
        return SpfResult(res, identity, domain, exp, lookups=len(snap.answers))

    def _remember(self, domain: str, keys: tuple[Key, ...]) -> None:
        # Only names of the domain's own policy chain are worth pre-fetching; PTR names depend on the client.
        keep = tuple(k for k in keys if k[1] != "PTR")
        self._hints[domain] = keep
        self._hints.move_to_end(domain)
        while len(self._hints) > self._hint_cache:
            self._hints.popitem(last=False)


__all__ = ["RESULTS", "NeedLookup", "SpfEvaluator", "SpfResult"]
