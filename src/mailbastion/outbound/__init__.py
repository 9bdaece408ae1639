"""Delivery to the Internet: the outbound TLS policy (DANE, MTA-STS, the site's table, REQUIRETLS) and
TLS-RPT, as a package the SMTP client calls.

    tls = OutboundTls.from_settings(settings, dns_resolver)            # once per process
    policy = await tls.policy(domain, mx_hosts, requiretls=...)        # DomainTlsPolicy
    req = policy.for_host(host)                                         # TlsRequirement
    done = await tls.secure(smtp, req, receiving_ip=ip)                 # aiosmtplib: EHLO, STARTTLS, check
    # or, step by step: tls.context() for STARTTLS, tls.check(ssl_object, req, ...), tls.refused(req, ...)

Modules: requirement (values), dnssec (the validating resolver's AD bit), dane, pkix, mta_sts, policy (the
resolver, strongest first), check (after the handshake), session (the facade), tlsrpt_store (sessions
counted per day), tlsrpt_report (RFC 8460 reports and their delivery).
"""

from mailbastion.outbound.check import TlsCheck, check_peer, peer_chain, starttls_context
from mailbastion.outbound.dnssec import DnssecLookupFailed, DnssecResolver, SecureAnswer
from mailbastion.outbound.mta_sts import MtaStsCache, MtaStsFetcher, MtaStsPolicy
from mailbastion.outbound.pkix import TrustStore
from mailbastion.outbound.policy import TlsPolicyResolver
from mailbastion.outbound.requirement import (
    DomainTlsPolicy,
    PolicySource,
    ReportPolicy,
    Tlsa,
    TlsMode,
    TlsRefusal,
    TlsRequirement,
)
from mailbastion.outbound.session import OutboundTls, SessionTls, TlsHandshakeFallback, TlsPolicyFailure
from mailbastion.outbound.tlsrpt_store import TlsRptStore

__all__ = [
    "DnssecLookupFailed", "DnssecResolver", "DomainTlsPolicy", "MtaStsCache", "MtaStsFetcher", "MtaStsPolicy",
    "OutboundTls", "PolicySource", "ReportPolicy", "SecureAnswer", "SessionTls", "TlsCheck", "TlsHandshakeFallback",
    "TlsMode", "TlsPolicyFailure", "TlsPolicyResolver", "TlsRefusal", "TlsRequirement", "TlsRptStore", "Tlsa",
    "TrustStore", "check_peer", "peer_chain", "starttls_context",
]
