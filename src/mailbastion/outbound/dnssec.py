"""Lookups through the site's DNSSEC-validating resolver, with the AD bit kept (RFC 4035 §3.2.3, RFC 6840 §5.7).

    dnssec = DnssecResolver("127.0.0.1", 5353)
    answer = await dnssec.query("_25._tcp.mx.example.org", "TLSA")
    answer.secure      -> True: the resolver validated the answer (AD set), denial of existence included
    answer.records     -> dnspython rdata of the asked type, CNAMEs followed
Raises DnssecLookupFailed on SERVFAIL (a bogus answer looks exactly like that), a timeout, or any other
error: RFC 7672 §2.1.1 makes such a failure a reason to defer, never to treat the name as insecure.

Only this resolver's AD bit is believed: the site names it in `[outbound] dnssec_resolver`, on loopback.
The ordinary resolver (`dns/resolver.py`) drops the AD bit on purpose, so nothing else can claim security.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype


class DnssecLookupFailed(Exception):
    """The validating resolver gave no usable answer (SERVFAIL, timeout, refused, malformed)."""


@dataclass(frozen=True, slots=True)
class SecureAnswer:
    name: str  # the name asked
    rdtype: str
    records: tuple[dns.rdata.Rdata, ...]
    secure: bool  # AD bit: validated (for an empty answer: the denial of existence validated)
    nxdomain: bool = False

    @property
    def exists(self) -> bool:
        return bool(self.records)


class DnssecResolver:
    """A stub that asks one validating resolver with DO and AD set and reports the AD bit it gets back."""

    def __init__(self, address: str, port: int = 53, *, timeout: float = 10.0) -> None:
        self.address = address
        self.port = port
        self.timeout = timeout

    async def query(self, name: str, rdtype: str) -> SecureAnswer:
        qname = dns.name.from_text(name)
        qtype = dns.rdatatype.from_text(rdtype)
        request = dns.message.make_query(qname, qtype, want_dnssec=True, use_edns=0, payload=1232)
        request.flags |= dns.flags.RD | dns.flags.AD  # RFC 6840 §5.7: AD in the query asks for it in the reply
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(request, self.address, timeout=self.timeout,
                                                                 port=self.port)
        except (dns.exception.DNSException, OSError) as exc:
            raise DnssecLookupFailed(f"{name}/{rdtype}: {type(exc).__name__} {exc}".rstrip()) from None
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnssecLookupFailed(f"{name}/{rdtype}: {dns.rcode.to_text(rcode)} from the validating resolver")
        secure = bool(response.flags & dns.flags.AD)
        target = qname
        for _ in range(16):  # follow the CNAME chain the resolver put in the answer section
            cname = response.get_rrset(response.answer, target, dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                break
            target = cname[0].target
        rrset = response.get_rrset(response.answer, target, dns.rdataclass.IN, qtype)
        records = tuple(rrset) if rrset is not None else ()
        return SecureAnswer(name, rdtype.upper(), records, secure, nxdomain=rcode == dns.rcode.NXDOMAIN)

__all__ = ["DnssecLookupFailed", "DnssecResolver", "SecureAnswer"]
