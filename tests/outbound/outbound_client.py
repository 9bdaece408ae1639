"""A small SMTP client of the tests' own that delivers through the outbound TLS policy, the way the
gateway's SMTP client is to call it: MX lookup, policy, per host: connect, `OutboundTls.secure`, MAIL/RCPT/DATA.

A uniquely named module (not conftest) so test modules can import it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
from outbound_world import World

from mailbastion.dns.resolver import DnsResolver
from mailbastion.outbound import (
    DnssecResolver,
    MtaStsCache,
    MtaStsFetcher,
    OutboundTls,
    SessionTls,
    TlsHandshakeFallback,
    TlsPolicyFailure,
    TlsPolicyResolver,
    TlsRefusal,
    TlsRptStore,
    TrustStore,
)
from mailbastion.outbound.mta_sts import https_context


@dataclass
class Attempt:
    status: str  # "delivered" | "deferred" | "failed"
    text: str
    host: str = ""
    session: SessionTls | None = None


async def _open(ip: str, port: int) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(hostname=ip, port=port, local_hostname="client.test", start_tls=False, use_tls=False,
                           timeout=20)
    await smtp.connect()
    return smtp


async def _close(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


def _end(refusal: TlsRefusal, host: str = "") -> Attempt:
    return Attempt("failed" if refusal.permanent else "deferred", str(refusal), host)


async def deliver(tls: OutboundTls, dns: DnsResolver, rcpt: str, message: bytes, *, port: int,
                  sender: str = "alice@ours.test", requiretls: bool = False) -> Attempt:
    domain = rcpt.rpartition("@")[2]
    mx = await dns.lookup(domain, "MX")
    hosts = [r.split(" ", 1)[1].rstrip(".") for r in sorted(mx.records, key=lambda r: int(r.split()[0]))] or [domain]
    policy = await tls.policy(domain, hosts, requiretls=requiretls)
    if policy.refusal is not None:
        return _end(policy.refusal)
    last = Attempt("deferred", f"4.4.4 no host for {domain}")
    for host in hosts:
        req = policy.for_host(host)
        if req.refusal is not None:
            tls.refused(req, req.refusal)
            last = _end(req.refusal, host)
            continue
        ip = (await dns.lookup(host, "A")).records[0]
        smtp = await _open(ip, port)
        try:
            try:
                done = await tls.secure(smtp, req, receiving_ip=ip)
            except TlsHandshakeFallback:
                await _close(smtp)
                smtp = await _open(ip, port)
                done = await tls.secure(smtp, req, receiving_ip=ip, allow_tls=False)
            await smtp.sendmail(sender, [rcpt], message, mail_options=list(done.mail_options))
            return Attempt("delivered", done.describe(), host, done)
        except TlsPolicyFailure as exc:
            last = _end(exc.refusal, host)
        finally:
            await _close(smtp)
    return last


MESSAGE = b"From: alice@ours.test\r\nTo: bob@remote\r\nSubject: hello\r\n\r\nhello\r\n"


def make_tls(world: World, tmp: Path, *, dnssec: bool = True, local: dict[str, str] | None = None,
             resolver: DnsResolver | None = None) -> tuple[OutboundTls, DnsResolver]:
    dns = resolver or DnsResolver([world.unbound.host], port=world.unbound.port, timeout=5)
    fetcher = MtaStsFetcher(dns, MtaStsCache(tmp / "mta-sts"), ssl_context=https_context(world.ca.cert_path),
                            timeout=10, https_port=world.web.port)
    policy = TlsPolicyResolver(dnssec=DnssecResolver(world.unbound.host, world.unbound.port, timeout=5)
                               if dnssec else None, mta_sts=fetcher, local=local)
    tls = OutboundTls(policy, trust=TrustStore.from_file(world.ca.cert_path), reports=TlsRptStore(tmp / "rpt.db"))
    return tls, dns
