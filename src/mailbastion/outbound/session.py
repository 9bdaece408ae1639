"""The outbound TLS policy as the SMTP client uses it: one object, built once per process.

    tls = OutboundTls.from_settings(settings, dns_resolver)
    policy = await tls.policy(domain, mx_hosts, requiretls=record.requiretls)
    if policy.refusal: every recipient of the domain gets it (temporary unless .permanent)
    for host in mx_hosts:
        req = policy.for_host(host)
        if req.refusal: tls.refused(req, req.refusal); next host
        smtp = aiosmtplib.SMTP(...); await smtp.connect()
        done = await tls.secure(smtp, req, receiving_ip=ip)      # EHLO, STARTTLS, check, EHLO again, REQUIRETLS
        await smtp.mail(sender, options=[*done.mail_options, ...]) ...

`secure` raises TlsPolicyFailure (QUIT and try the next host; `.refusal` says temporary or permanent) and
TlsHandshakeFallback (opportunistic only: connect again and call `secure(..., allow_tls=False)`). It
records the session for TLS-RPT (success, or the failure with its RFC 8460 result type) exactly once.

Without aiosmtplib the same steps are: `starttls_context()` for the handshake, `check(tls_object, req, ...)`
after it (checks and records), `refused(req, refusal, ...)` for a failure that has no handshake to check.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib

from mailbastion.outbound.check import TlsCheck, check_peer, refusal_of, starttls_context
from mailbastion.outbound.dnssec import DnssecResolver
from mailbastion.outbound.mta_sts import MtaStsCache, MtaStsFetcher, https_context
from mailbastion.outbound.pkix import TrustStore
from mailbastion.outbound.policy import TlsPolicyResolver
from mailbastion.outbound.requirement import DomainTlsPolicy, ReportPolicy, TlsMode, TlsRefusal, TlsRequirement
from mailbastion.outbound.tlsrpt_store import TlsRptStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailbastion.config.schema import Settings
    from mailbastion.dns.resolver import DnsResolver

log = logging.getLogger("mailbastion.outbound.tls")

STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
VALIDATION_FAILURE = "validation-failure"


class TlsPolicyFailure(Exception):
    """The session may not go on: QUIT, and try the next host. `refusal` is temporary unless it says so."""

    def __init__(self, refusal: TlsRefusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class TlsHandshakeFallback(Exception):
    """Opportunistic TLS failed in the handshake: connect again and call secure(..., allow_tls=False)."""


@dataclass(frozen=True, slots=True)
class SessionTls:
    """What the session got. `mail_options` go on MAIL FROM (REQUIRETLS, RFC 8689 §4.2.1)."""

    tls: bool
    verified: bool = False
    check: TlsCheck | None = None
    mail_options: tuple[str, ...] = ()

    def describe(self) -> str:
        return str(self.check) if self.check is not None else "no TLS"


class OutboundTls:
    def __init__(self, resolver: TlsPolicyResolver, *, trust: TrustStore | None = None,
                 trust_file: str | Path | None = None, reports: TlsRptStore | None = None,
                 min_version: str = "TLSv1.2") -> None:
        self.resolver = resolver
        self._trust = trust
        self._trust_file = trust_file
        self.reports = reports
        self.min_version = min_version

    @staticmethod
    def from_settings(settings: Settings, dns: DnsResolver) -> OutboundTls:
        """Raises ConfigError when `[outbound] ca_file` is set but unreadable (the caller must not start);
        the system bundle is read when a session first needs it."""
        from mailbastion.config.sections.outbound import parse_resolver

        o = settings.outbound
        trust_file = settings.path(o.ca_file) if o.ca_file else None
        trust = OutboundTls._read_trust(trust_file) if trust_file else None  # refuse to start on a bad file
        dnssec = None
        if o.dnssec_resolver:
            host, port = parse_resolver(o.dnssec_resolver)
            dnssec = DnssecResolver(host, port, timeout=o.dnssec_timeout)
        fetcher = None
        if o.mta_sts:
            fetcher = MtaStsFetcher(dns, MtaStsCache(settings.path(o.mta_sts_cache_dir)),
                                    ssl_context=https_context(trust_file),
                                    timeout=o.mta_sts_fetch_timeout, max_bytes=o.mta_sts_max_policy_bytes,
                                    max_age_cap=o.mta_sts_max_age_cap)
        resolver = TlsPolicyResolver(dnssec=dnssec, mta_sts=fetcher, local=o.tls_policy)
        reports = TlsRptStore(settings.path(o.tls_rpt_db)) if o.tls_rpt else None
        return OutboundTls(resolver, trust=trust, trust_file=trust_file, reports=reports,
                           min_version=settings.tls.min_version)

    @staticmethod
    def _read_trust(path: str | Path | None) -> TrustStore:
        from mailbastion.core.errors import ConfigError

        try:
            return TrustStore.from_file(path) if path else TrustStore.system()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the CA bundle for outbound TLS: {exc}", key="outbound.ca_file") from None

    def trust(self) -> TrustStore:
        if self._trust is None:
            self._trust = self._read_trust(self._trust_file)
        return self._trust

    async def policy(self, domain: str, mx_hosts: Sequence[str], *, requiretls: bool = False) -> DomainTlsPolicy:
        return await self.resolver.for_domain(domain, mx_hosts, requiretls=requiretls)

    def context(self) -> ssl.SSLContext:
        return starttls_context(self.min_version)

    # -- recording (TLS-RPT) -----------------------------------------------------------------------------

    def _record(self, req: TlsRequirement, result_type: str | None, *, sending_ip: str = "", receiving_ip: str = "",
                helo: str = "", detail: str = "") -> None:
        if self.reports is None:
            return
        if result_type is None and req.policy_failure is not None:
            result_type, detail = req.policy_failure
        try:
            self.reports.record(req.report or ReportPolicy("no-policy-found", req.domain), result_type=result_type,
                                sending_ip=sending_ip, receiving_mx=req.host, receiving_helo=helo,
                                receiving_ip=receiving_ip, detail=detail)
        except Exception:  # a report counter must never cost a delivery
            log.exception("tls-rpt: cannot record a session to %s", req.domain)

    def refused(self, req: TlsRequirement, refusal: TlsRefusal, *, receiving_ip: str = "",
                sending_ip: str = "") -> None:
        """Record a failure that stopped the session before or without a handshake to check."""
        log.warning("tls-policy domain=%s host=%s %s: %s", req.domain, req.host, req.describe(), refusal)
        if refusal.result_type is not None:
            self._record(req, refusal.result_type, receiving_ip=receiving_ip, sending_ip=sending_ip,
                         detail=refusal.text)

    def check(self, tls_object: ssl.SSLObject | ssl.SSLSocket, req: TlsRequirement, *, receiving_ip: str = "",
              sending_ip: str = "", helo: str = "") -> tuple[TlsCheck, TlsRefusal | None]:
        """Judge the established session against `req` and record it; the refusal is set when the session
        must end (QUIT, next host)."""
        result = check_peer(tls_object, req, self.trust() if req.mode is TlsMode.VERIFY else None)
        self._record(req, result.result_type, sending_ip=sending_ip, receiving_ip=receiving_ip, helo=helo,
                     detail=result.detail if not result.ok else "")
        refusal = refusal_of(req, result)
        if not result.ok:
            log.warning("tls-policy domain=%s host=%s[%s] %s: %s%s", req.domain, req.host, receiving_ip,
                        req.describe(), result.detail, "" if refusal else " (reported, delivering anyway)")
        return result, refusal

    # -- the whole step for aiosmtplib ----------------------------------------------------------------------

    async def secure(self, smtp: aiosmtplib.SMTP, req: TlsRequirement, *, receiving_ip: str = "",
                     allow_tls: bool = True) -> SessionTls:
        """EHLO, STARTTLS as `req` says, the peer check, EHLO again, REQUIRETLS. Call right after connect().
        Raises TlsPolicyFailure, TlsHandshakeFallback, and aiosmtplib's errors for the SMTP dialogue."""
        sockname = smtp.get_transport_info("sockname")
        sending_ip = str(sockname[0]) if sockname else ""
        if req.refusal is not None:
            self.refused(req, req.refusal, receiving_ip=receiving_ip, sending_ip=sending_ip)
            raise TlsPolicyFailure(req.refusal)
        greeting = await smtp.ehlo()
        helo = greeting.message.split("\n", 1)[0].split(" ", 1)[0] if greeting.message else ""
        if not req.wants_tls:
            return SessionTls(False)
        if not allow_tls or not smtp.supports_extension("starttls"):
            what = "STARTTLS is not offered" if allow_tls else "TLS handshake failed earlier"
            refusal = TlsRefusal("4.7.4", f"{req.host}[{receiving_ip}]: {what} ({req.describe()})",
                                 STARTTLS_NOT_SUPPORTED if allow_tls else VALIDATION_FAILURE)
            if req.enforced:
                self.refused(req, refusal, receiving_ip=receiving_ip, sending_ip=sending_ip)
                raise TlsPolicyFailure(refusal)
            if allow_tls:  # the handshake failure was recorded when it happened
                self._record(req, refusal.result_type, sending_ip=sending_ip, receiving_ip=receiving_ip, helo=helo,
                             detail=refusal.text)
            log.info("tls-policy domain=%s host=%s[%s] %s: %s, sending in clear text", req.domain, req.host,
                     receiving_ip, req.describe(), what)
            return SessionTls(False)
        try:
            await smtp.starttls(server_hostname=req.host, tls_context=self.context())
        except (aiosmtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            refusal = TlsRefusal("4.7.5", f"{req.host}[{receiving_ip}]: TLS handshake failed: {exc}",
                                 VALIDATION_FAILURE)
            self.refused(req, refusal, receiving_ip=receiving_ip, sending_ip=sending_ip)
            if req.enforced:
                raise TlsPolicyFailure(refusal) from None
            raise TlsHandshakeFallback(str(exc)) from None
        tls_object = smtp.get_transport_info("ssl_object")
        result, failed = self.check(tls_object, req, receiving_ip=receiving_ip, sending_ip=sending_ip, helo=helo)
        if failed is not None:
            raise TlsPolicyFailure(failed)
        await smtp.ehlo()
        if req.requiretls:
            if not smtp.supports_extension("requiretls"):
                raise TlsPolicyFailure(TlsRefusal("5.7.30", f"{req.host} does not offer REQUIRETLS "
                                                  "(RFC 8689 §5: REQUIRETLS support required)", permanent=True))
            return SessionTls(True, result.verified, result, ("REQUIRETLS",))
        return SessionTls(True, result.verified, result)


__all__ = ["OutboundTls", "SessionTls", "TlsHandshakeFallback", "TlsPolicyFailure"]
