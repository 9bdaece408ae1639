"""The outbound TLS policy of a destination domain, strongest first.

    resolver = TlsPolicyResolver(dnssec=DnssecResolver("127.0.0.1", 5353), mta_sts=fetcher,
                                 local={"partner.example": "verify"})
    policy = await resolver.for_domain("example.org", ["mx1.example.org", "mx2.example.org"], requiretls=False)
    policy.refusal                   -> None, or why no host may be used now (temporary unless it says so)
    policy.for_host("mx1.example.org") -> TlsRequirement(mode=dane, source=dane, tlsa=(...), ...)

Per MX host, the first that applies:
  1. DANE (RFC 7672): the MX RRset, the host's address records and its `_25._tcp` TLSA RRset all validated
     by the site's DNSSEC resolver. Usable TLSA records -> dane; TLSA present but none usable -> encrypt
     (§2.2); a validated "no TLSA" -> fall through; a failed TLSA lookup (bogus, SERVFAIL) -> the host is
     refused (§2.1.1), never treated as unsigned. No DNSSEC resolver configured: no DANE at all; the AD bit
     of any other resolver is never looked at.
  2. MTA-STS (RFC 8461): `enforce` -> verify (PKIX, MX host name) and an MX host the policy does not list is
     refused; `testing` -> verify, report_only (reported, delivered anyway); `none` -> no policy.
  3. `[outbound.tls_policy]`: the site's none/may/encrypt/verify for the domain (or a ".parent" entry).
     It replaces the opportunistic default, and raises but never lowers 1 and 2.
  4. REQUIRETLS (RFC 8689 §4.2.1): the message needs DANE, or PKIX on an MX that DNSSEC or MTA-STS vouches
     for; testing-mode MTA-STS counts as enforce. Neither available -> permanent 5.7.10.
  5. Otherwise opportunistic (may).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from mailbastion.outbound.dnssec import DnssecLookupFailed, DnssecResolver
from mailbastion.outbound.mta_sts import MtaStsFetcher, MtaStsPolicy, StsLookup
from mailbastion.outbound.requirement import (
    DomainTlsPolicy,
    PolicySource,
    ReportPolicy,
    Tlsa,
    TlsMode,
    TlsRefusal,
    TlsRequirement,
)

log = logging.getLogger("mailbastion.outbound.policy")

DNSSEC_INVALID = "dnssec-invalid"  # RFC 8460 §4.3.2.2
TLSA_INVALID = "tlsa-invalid"


class _DaneHost:
    """What DNSSEC says about one MX host: tlsa (validated, maybe empty), or the lookup failure."""

    __slots__ = ("failure", "tlsa")

    def __init__(self, tlsa: tuple[Tlsa, ...] = (), failure: str | None = None) -> None:
        self.tlsa = tlsa
        self.failure = failure


class TlsPolicyResolver:
    def __init__(self, *, dnssec: DnssecResolver | None = None, mta_sts: MtaStsFetcher | None = None,
                 local: Mapping[str, str] | None = None) -> None:
        self.dnssec = dnssec
        self.mta_sts = mta_sts
        self.local = {k.lower().rstrip("."): TlsMode(v) for k, v in (local or {}).items()}

    # -- the three sources ------------------------------------------------------------------------------

    async def _dane(self, domain: str, hosts: Sequence[str]) -> tuple[bool, dict[str, _DaneHost], str | None]:
        """(MX secure, per-host DANE facts, domain-wide failure)."""
        if self.dnssec is None:
            return False, {}, None
        try:
            mx = await self.dnssec.query(domain, "MX")
        except DnssecLookupFailed as exc:
            # RFC 7672 §2.2.1: an MX lookup that fails validation is a reason to defer, not to go insecure.
            return False, {}, f"MX lookup of {domain} through the DNSSEC resolver failed: {exc}"
        if not mx.secure:
            return False, {}, None
        facts: dict[str, _DaneHost] = {}
        for host in hosts:
            facts[host] = await self._dane_host(host)
        return True, facts, None

    async def _dane_host(self, host: str) -> _DaneHost:
        assert self.dnssec is not None
        try:
            # RFC 7672 §2.2.2: TLSA records are looked up only for a host whose address records are secure.
            addr = await self.dnssec.query(host, "A")
            if not addr.records:
                addr = await self.dnssec.query(host, "AAAA")
            if not addr.secure:
                return _DaneHost()
            answer = await self.dnssec.query(f"_25._tcp.{host}", "TLSA")
        except DnssecLookupFailed as exc:
            return _DaneHost(failure=str(exc))
        if not answer.secure:
            return _DaneHost()
        records = tuple(Tlsa(r.usage, r.selector, r.mtype, bytes(r.cert))  # type: ignore[attr-defined]
                        for r in answer.records)
        return _DaneHost(tlsa=records)

    def _local(self, domain: str) -> TlsMode | None:
        if domain in self.local:
            return self.local[domain]
        parts = domain.split(".")
        for i in range(1, len(parts)):
            parent = "." + ".".join(parts[i:])
            if parent in self.local:
                return self.local[parent]
        return None

    # -- putting them together ----------------------------------------------------------------------------

    async def for_domain(self, domain: str, mx_hosts: Sequence[str], *, requiretls: bool = False) -> DomainTlsPolicy:
        """The requirement of every host in `mx_hosts` (the MX hosts, or the domain itself for an implicit
        MX), in that order. Never raises: DNS and HTTPS trouble become refusals or a weaker policy as the
        RFCs say."""
        domain = domain.lower().rstrip(".")
        hosts = [h.lower().rstrip(".") for h in mx_hosts]
        mx_secure, dane, failure = await self._dane(domain, hosts)
        if failure is not None:
            return DomainTlsPolicy(domain, (), TlsRefusal("4.7.5", failure, DNSSEC_INVALID))
        sts = StsLookup(None)
        if self.mta_sts is not None and not (dane and all(d.tlsa or d.failure for d in dane.values())):
            sts = await self.mta_sts.policy(domain)
        policy = sts.policy if sts.policy is not None and sts.policy.mode != "none" else None
        local = self._local(domain)
        if requiretls and not mx_secure and policy is None:
            why = "no DNSSEC-validated MX and no MTA-STS policy"
            return DomainTlsPolicy(domain, tuple(self._base(domain, h) for h in hosts), TlsRefusal(
                "5.7.10", f"REQUIRETLS: {domain} cannot be reached with verified TLS ({why}; RFC 8689 §4.2.1)",
                permanent=True))
        out = []
        for host in hosts:
            req = self._host(domain, host, dane.get(host), policy, sts, local, mx_secure, requiretls)
            if req.refusal is None and req.notes:
                log.info("tls-policy %s %s: %s; %s", domain, host, req.describe(), "; ".join(req.notes))
            out.append(req)
        return DomainTlsPolicy(domain, tuple(out))

    @staticmethod
    def _base(domain: str, host: str) -> TlsRequirement:
        return TlsRequirement(domain, host, TlsMode.MAY, PolicySource.OPPORTUNISTIC,
                              report=ReportPolicy("no-policy-found", domain))

    def _host(self, domain: str, host: str, dane: _DaneHost | None, sts_policy: MtaStsPolicy | None,
              sts: StsLookup, local: TlsMode | None, mx_secure: bool, requiretls: bool) -> TlsRequirement:
        notes: list[str] = []
        if dane is not None and dane.failure is not None:
            return TlsRequirement(domain, host, TlsMode.DANE, PolicySource.DANE, requiretls=requiretls,
                                  refusal=TlsRefusal("4.7.5", f"TLSA lookup for {host} failed on a signed zone: "
                                                     f"{dane.failure}", DNSSEC_INVALID),
                                  report=ReportPolicy("tlsa", domain))
        if dane is not None and dane.tlsa:
            usable = tuple(t for t in dane.tlsa if t.usable)
            report = ReportPolicy("tlsa", domain, tuple(str(t) for t in dane.tlsa))
            if usable:
                req = TlsRequirement(domain, host, TlsMode.DANE, PolicySource.DANE, names=(host,), tlsa=usable,
                                     report=report)
            else:  # RFC 7672 §2.2: TLSA records exist but none usable -> mandatory unauthenticated TLS
                req = TlsRequirement(domain, host, TlsMode.ENCRYPT, PolicySource.DANE, report=report,
                                     notes=("TLSA records present but none usable",))
                if requiretls:
                    return replace(req, requiretls=True, refusal=TlsRefusal(
                        "4.7.5", f"REQUIRETLS: no usable TLSA record for {host}", TLSA_INVALID))
            if local is not None and local.strength > req.mode.strength:
                notes.append(f"local policy {local.value} is stronger, but DANE applies")
            return replace(req, requiretls=requiretls, notes=tuple(notes))
        if sts_policy is not None:
            report = ReportPolicy("sts", domain, sts_policy.lines(), sts_policy.mx)
            testing = sts_policy.mode == "testing" and not requiretls  # RFC 8689 §4.2.1: testing acts as enforce
            req = TlsRequirement(domain, host, TlsMode.VERIFY, PolicySource.MTA_STS, names=(host,),
                                 report_only=testing, requiretls=requiretls, report=report)
            if not sts_policy.matches(host):
                text = f"MX host {host} is not in the MTA-STS policy of {domain} (mx: {', '.join(sts_policy.mx)})"
                if not testing:
                    return replace(req, refusal=TlsRefusal("4.7.5", text, "validation-failure"))
                notes.append(text + " (testing: delivered anyway)")
            if local is not None and (testing or local.strength < TlsMode.VERIFY.strength):
                if local.strength > TlsMode.MAY.strength and testing:
                    # The site asks for more than a testing policy enforces: its table wins the enforcing.
                    req = replace(req, mode=local, source=PolicySource.LOCAL, report_only=False)
                else:
                    notes.append(f"local policy {local.value} does not lower MTA-STS {sts_policy.mode}")
            return replace(req, notes=tuple(notes))
        report = ReportPolicy("no-policy-found", domain)
        if requiretls:
            # Only a DNSSEC-validated MX reaches here (the domain-level refusal covers the rest): PKIX on it.
            return TlsRequirement(domain, host, TlsMode.VERIFY, PolicySource.REQUIRETLS, names=(host,),
                                  requiretls=True, report=report)
        if local is not None:
            return TlsRequirement(domain, host, local, PolicySource.LOCAL, names=(host,), report=report,
                                  policy_failure=(sts.result_type, sts.error) if sts.result_type else None)
        if sts.result_type is not None:  # a published policy we could not get: reported as its failure
            return TlsRequirement(domain, host, TlsMode.MAY, PolicySource.OPPORTUNISTIC,
                                  report=ReportPolicy("sts", domain), notes=(f"MTA-STS: {sts.error}",),
                                  policy_failure=(sts.result_type, sts.error))
        return TlsRequirement(domain, host, TlsMode.MAY, PolicySource.OPPORTUNISTIC, report=report)


__all__ = ["DNSSEC_INVALID", "TLSA_INVALID", "TlsPolicyResolver"]
