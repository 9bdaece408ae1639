"""DMARC (RFC 7489): find the From domain's policy, judge alignment, and say what the policy asks.

    policy = await DmarcPolicyFinder(resolver).find("mail.example.org")   # DmarcRecord | None; LookupTimeout
    outcome = evaluate(from_domain, record, spf, dkim, sample=random.random)

Record discovery (§6.6.3): `_dmarc.<From domain>`, and when that has none, `_dmarc.<organizational
domain>` found through the public suffix list (§3.2). Alignment (§3.1): relaxed compares
organizational domains, strict compares domains exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from mailbastion.auth.dkim_verify import SignatureResult
from mailbastion.auth.spf import SpfResult
from mailbastion.dns.resolver import DnsResolver

POLICIES = ("none", "quarantine", "reject")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@lru_cache(maxsize=65536)
def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label; the domain itself when it has no known suffix."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    """RFC 7489 §3.1.1/§3.1.2: "s" needs an exact match, "r" the same organizational domain."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if mode == "s" else organizational_domain(a) == organizational_domain(b)


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    domain: str  # where the record was found (the From domain or its organizational domain)
    p: str  # requested policy for this domain
    sp: str  # policy for subdomains (defaults to p)
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    rua: str = ""
    raw: str = ""
    malformed: str = ""  # what was wrong, when p was invalid and we fell back (§6.6.3 step 6)


def parse_record(domain: str, text: str) -> DmarcRecord | None:
    """Parse one `v=DMARC1; p=...` record. None when it is not a DMARC record at all (§6.6.3)."""
    parts = [p.strip() for p in text.split(";")]
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        if "=" in part:
            k, _, v = part.partition("=")
            tags.setdefault(k.strip().lower(), v.strip())
    malformed = ""
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        # §6.6.3: an invalid or missing p with a valid rua is treated as p=none; without rua, ignored.
        if not tags.get("rua"):
            return None
        malformed, p = f"invalid p={tags.get('p', '')!r}", "none"
    sp = tags.get("sp", p).lower()
    if sp not in POLICIES:
        malformed, sp = malformed or f"invalid sp={tags.get('sp')!r}", p
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        malformed, pct = malformed or "invalid pct", 100
    pct = min(100, max(0, pct))
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    if adkim not in ("r", "s") or aspf not in ("r", "s"):
        malformed = malformed or "invalid adkim/aspf"
        adkim = adkim if adkim in ("r", "s") else "r"
        aspf = aspf if aspf in ("r", "s") else "r"
    return DmarcRecord(domain, p, sp, pct, adkim, aspf, tags.get("rua", ""), text, malformed)


class DmarcPolicyFinder:
    def __init__(self, resolver: DnsResolver) -> None:
        self.resolver = resolver

    async def find(self, from_domain: str) -> DmarcRecord | None:
        """The record that governs `from_domain`, or None. Raises LookupTimeout on a DNS failure."""
        from_domain = from_domain.lower().rstrip(".")
        found = await self._at(from_domain)
        if found is not None:
            return found
        org = organizational_domain(from_domain)
        if org != from_domain:
            return await self._at(org)
        return None

    async def _at(self, domain: str) -> DmarcRecord | None:
        answer = await self.resolver.lookup(f"_dmarc.{domain}", "TXT")
        records = [r for r in (parse_record(domain, t) for t in answer.records) if r is not None]
        # §6.6.3 step 5: more than one record means no record.
        return records[0] if len(records) == 1 else None


@dataclass(frozen=True, slots=True)
class DmarcOutcome:
    result: str  # "pass" | "fail" | "none" | "temperror"
    from_domain: str
    policy: str = "none"  # what the domain asks for a failure: none | quarantine | reject
    applied: str = "none"  # what we apply after pct sampling (§6.6.4)
    spf_aligned: bool = False
    dkim_aligned: bool = False
    dkim_domain: str = ""  # the aligned passing signature's d=
    record: DmarcRecord | None = None
    reason: str = ""


def evaluate(
    from_domain: str,
    record: DmarcRecord | None,
    spf: SpfResult | None,
    signatures: Sequence[SignatureResult],
    *,
    sample: Callable[[], float] = random.random,
) -> DmarcOutcome:
    """RFC 7489 §4.2: pass when SPF or DKIM passed for an identifier aligned with the From domain."""
    from_domain = from_domain.lower().rstrip(".")
    if record is None:
        return DmarcOutcome("none", from_domain, reason="no DMARC record")
    # SPF's identity is MAIL FROM's domain, or HELO for the null sender (§3.1.2, RFC 7208 §2.4).
    spf_ok = spf is not None and spf.is_pass and aligned(spf.domain, from_domain, record.aspf)
    passing = [s for s in signatures if s.is_pass and aligned(s.domain, from_domain, record.adkim)]
    # Prefer an exact match for the report, then any aligned one.
    passing.sort(key=lambda s: s.domain != from_domain)
    dkim_ok = bool(passing)
    policy = record.p if record.domain == from_domain else record.sp
    if spf_ok or dkim_ok:
        return DmarcOutcome("pass", from_domain, policy, "none", spf_ok, dkim_ok,
                            passing[0].domain if passing else "", record)
    # Only an identifier that could have aligned makes the failure uncertain: a temperror for the
    # attacker's own MAIL FROM domain cannot turn into a pass for the From domain.
    unsure = spf is None or (spf.result == "temperror" and aligned(spf.domain, from_domain, record.aspf)) or any(
        s.result == "temperror" and aligned(s.domain, from_domain, record.adkim) for s in signatures)
    if unsure:
        return DmarcOutcome("temperror", from_domain, policy, "none", record=record,
                            reason="SPF or DKIM could not be checked (DNS)")
    applied = policy
    # §6.6.4: a message not sampled by pct gets the next less strict policy.
    if record.pct < 100 and sample() * 100 >= record.pct:
        applied = {"reject": "quarantine", "quarantine": "none"}.get(policy, "none")
    return DmarcOutcome("fail", from_domain, policy, applied, record=record, reason="no aligned SPF or DKIM pass")


__all__ = ["DmarcOutcome", "DmarcPolicyFinder", "DmarcRecord", "aligned", "evaluate", "organizational_domain",
           "parse_record"]
