"""SMTP delivery to remote domains: MX lookup (RFC 5321 §5), opportunistic STARTTLS, per-recipient results.

For each recipient domain (or everything, through `relayhost`):
  1. MX records, lowest preference first; none at all -> the domain itself (implicit MX, §5.1);
     a null MX "0 ." (RFC 7505) or a domain that does not exist -> permanent failure.
  2. Each MX host's A and AAAA addresses, in order, up to `max_mx_hosts` hosts; a host that cannot be
     reached or that answers 4xx before RCPT moves us on to the next one.
  3. EHLO; STARTTLS when offered (opportunistic, unauthenticated: Postfix `smtp_tls_security_level =
     may`; if the handshake fails, the same host again in plain text). Verified policies such as
     MTA-STS and DANE belong to a later TLS policy layer.
  4. MAIL, one RCPT per recipient (each gets its own outcome), one DATA whose reply applies to all
     accepted recipients.
Only TempFailed comes from DNS timeouts and unreachable hosts; the queue manager retries them.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections import defaultdict

import aiosmtplib

from mailbastion.config.schema import Settings
from mailbastion.core.errors import LookupTimeout
from mailbastion.delivery.agent import DeliveryOutcome, PermFailed, TempFailed, outcome_of_reply, parse_hostport
from mailbastion.dns.resolver import DnsResolver
from mailbastion.smtp.tls import client_context
from mailbastion.spool.record import QueueRecord

log = logging.getLogger("mailbastion.delivery.smtp")


class _NextHost(Exception):
    """This host could not take the message; try the next one (the message says why)."""


class _TlsFailed(Exception):
    """STARTTLS was offered but failed: opportunistic TLS tries the same host again in plain text."""


def opportunistic_context() -> ssl.SSLContext:
    """TLS 1.2+, strong ciphers, no certificate check: better than plain text against a passive
    eavesdropper, and never a reason to fail delivery (RFC 3207 §4, RFC 7435)."""
    ctx = client_context(check_hostname=False)
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class SmtpDeliveryAgent:
    def __init__(
        self,
        resolver: DnsResolver,
        *,
        local_hostname: str = "localhost",
        port: int = 25,
        relayhost: str | None = None,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        max_mx_hosts: int = 5,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.resolver = resolver
        self.local_hostname = local_hostname
        self.port = port
        self.relay = parse_hostport(relayhost, 25) if relayhost else None
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_mx_hosts = max_mx_hosts
        self.tls_context = tls_context or opportunistic_context()

    @staticmethod
    def from_settings(settings: Settings, resolver: DnsResolver) -> SmtpDeliveryAgent:
        d = settings.delivery
        return SmtpDeliveryAgent(resolver, local_hostname=settings.server.hostname, port=d.remote_port,
                                 relayhost=d.relayhost, connect_timeout=d.connect_timeout,
                                 command_timeout=d.command_timeout, max_mx_hosts=d.max_mx_hosts)

    async def deliver(self, record: QueueRecord, message: bytes) -> dict[str, DeliveryOutcome]:
        """One outcome per pending recipient; recipients are grouped by domain (or sent together to
        the relayhost). Never raises."""
        groups: dict[str, list[str]] = defaultdict(list)
        for r in record.pending:
            groups["" if self.relay else r.address.rpartition("@")[2].lower()].append(r.address)
        out: dict[str, DeliveryOutcome] = {}
        for domain, rcpts in groups.items():
            try:
                out.update(await self._deliver_domain(domain, rcpts, record, message))
            except Exception as exc:  # a bug here must cost a retry, not the message
                log.exception("id=%s delivery to %s failed", record.queue_id, domain or "relayhost")
                out.update({a: TempFailed(f"4.3.0 local error: {exc}") for a in rcpts})
        return out

    async def _hosts(self, domain: str) -> list[tuple[str, int]] | DeliveryOutcome:
        """(hostname, port) to try in order, or an outcome that ends the attempt for the domain."""
        if self.relay is not None:
            return [self.relay]
        if domain.startswith("["):
            return PermFailed(f"5.1.2 address literal {domain} is not delivered to")
        try:
            mx = await self.resolver.lookup(domain, "MX")
        except LookupTimeout as exc:
            return TempFailed(f"4.4.3 MX lookup for {domain}: {exc}")
        if mx.nxdomain:
            return PermFailed(f"5.1.2 domain {domain} does not exist")
        ranked: list[tuple[int, str]] = []
        for rec in mx.records:
            pref, _, exchange = rec.partition(" ")
            ranked.append((int(pref), exchange.strip().rstrip(".")))
        if any(ex in ("", "@") for _, ex in ranked):
            return PermFailed(f"5.1.10 domain {domain} accepts no mail (null MX, RFC 7505)")
        if not ranked:
            ranked = [(0, domain)]  # RFC 5321 §5.1: no MX, the domain itself is the implicit MX
        ranked.sort()
        return [(host, self.port) for _, host in ranked[: self.max_mx_hosts]]

    async def _addresses(self, host: str) -> list[str]:
        if _is_ip(host):
            return [host]
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                found += (await self.resolver.lookup(host, rdtype)).records
            except LookupTimeout:
                continue
        return found

    async def _deliver_domain(self, domain: str, rcpts: list[str], record: QueueRecord,
                              message: bytes) -> dict[str, DeliveryOutcome]:
        hosts = await self._hosts(domain)
        if not isinstance(hosts, list):
            return {a: hosts for a in rcpts}
        last = f"4.4.4 no reachable mail server for {domain or 'relayhost'}"
        for host, port in hosts:
            addresses = await self._addresses(host)
            if not addresses:
                last = f"4.4.4 no address for mail server {host}"
            for ip in addresses:
                try:
                    try:
                        return await self._session(host, ip, port, rcpts, record, message, tls=True)
                    except _TlsFailed as exc:
                        log.warning("id=%s %s[%s]: STARTTLS failed (%s); sending in plain text",
                                    record.queue_id, host, ip, exc)
                        return await self._session(host, ip, port, rcpts, record, message, tls=False)
                except _NextHost as exc:
                    last = str(exc)
                    log.info("id=%s %s[%s]:%d: %s; trying next", record.queue_id, host, ip, port, last)
        return {a: TempFailed(last) for a in rcpts}

    async def _session(self, host: str, ip: str, port: int, rcpts: list[str], record: QueueRecord,
                       message: bytes, *, tls: bool) -> dict[str, DeliveryOutcome]:
        where = f"{host}[{ip}]:{port}"
        smtp = aiosmtplib.SMTP(hostname=ip, port=port, local_hostname=self.local_hostname,
                               timeout=self.command_timeout, start_tls=False, use_tls=False)
        try:
            await smtp.connect(timeout=self.connect_timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _NextHost(f"4.4.1 connect to {where}: {exc}") from None
        try:
            return await self._transaction(smtp, host, where, rcpts, record, message, tls=tls)
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500 or exc.code < 200:
                raise _NextHost(f"{exc.code} {exc.message} ({where})") from None
            return {a: PermFailed(f"{exc.code} {exc.message} ({where})") for a in rcpts}
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise _NextHost(f"4.4.2 {where}: {exc}") from None
        finally:
            try:
                await smtp.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def _transaction(self, smtp: aiosmtplib.SMTP, host: str, where: str, rcpts: list[str],
                           record: QueueRecord, message: bytes, *, tls: bool) -> dict[str, DeliveryOutcome]:
        await smtp.ehlo()
        used = ""
        if tls and smtp.supports_extension("starttls"):
            try:
                await smtp.starttls(server_hostname=host, tls_context=self.tls_context)
            except (aiosmtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
                raise _TlsFailed(str(exc) or type(exc).__name__) from None
            info = smtp.get_transport_info("ssl_object")
            used = f", {info.version()}" if info is not None else ", TLS"
        options: list[str] = []
        if record.smtputf8:
            if not smtp.supports_extension("smtputf8"):
                return {a: PermFailed(f"5.6.7 {where} does not support SMTPUTF8") for a in rcpts}
            options.append("SMTPUTF8")
        if record.body_8bitmime and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        await smtp.mail(record.sender, options=options, encoding="utf-8")
        out: dict[str, DeliveryOutcome] = {}
        accepted: list[str] = []
        for address in rcpts:
            try:
                await smtp.rcpt(address, encoding="utf-8")
                accepted.append(address)
            except aiosmtplib.SMTPRecipientRefused as exc:
                out[address] = outcome_of_reply(exc.code, f"{exc.message} ({where})")
        if not accepted:
            return out
        try:
            reply = await smtp.data(message)
            outcome = outcome_of_reply(reply.code, f"{reply.message} ({where}{used})")
        except aiosmtplib.SMTPDataError as exc:
            outcome = outcome_of_reply(exc.code, f"{exc.message} ({where})")
        out.update({a: outcome for a in accepted})
        return out
