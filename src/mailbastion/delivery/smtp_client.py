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
     accepted recipients. Every reply is parsed once into a Reply (code, enhanced status, text).
  5. RFC 3461 §4: when the next hop offers DSN, RET and ENVID go on MAIL and NOTIFY and ORCPT on each RCPT
     (xtext encoded); success is then the next hop's to report (Handoff.TRANSFERRED). Without DSN there,
     a success is reported by us when asked for (Handoff.RELAYED, Action: relayed).
  6. RFC 8689: a REQUIRETLS message needs verified TLS to a hop that offers REQUIRETLS. This agent speaks
     opportunistic, unverified TLS only, so such a message fails with 5.7.30 rather than leave insecurely.
Only Deferred comes from DNS timeouts and unreachable hosts; the queue manager retries them.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections import defaultdict

import aiosmtplib

from mailbastion.config.schema import Settings
from mailbastion.core.errors import LookupTimeout
from mailbastion.core.outcome import Deferred, DeliveryOutcome, Failed, Handoff, outcome_of, parse_reply
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.delivery.hostport import parse_hostport
from mailbastion.dns.resolver import DnsResolver
from mailbastion.tls_policy import client_context

log = logging.getLogger("mailbastion.delivery.smtp")


REQUIRETLS_UNAVAILABLE = Reply(550, "5.7.30", "REQUIRETLS: no verified TLS to the next hop is available here")


class _NextHost(Exception):
    """This host could not take the message; try the next one (the outcome says why)."""

    def __init__(self, outcome: DeliveryOutcome) -> None:
        super().__init__(outcome.reply.text)
        self.outcome = outcome


class _TlsFailed(Exception):
    """STARTTLS was offered but failed: opportunistic TLS tries the same host again in plain text."""


def opportunistic_context() -> ssl.SSLContext:
    """TLS 1.2+, strong ciphers, no certificate check: better than plain text against a passive
    eavesdropper, and never a reason to fail delivery (RFC 3207 §4, RFC 7435)."""
    ctx = client_context(check_hostname=False)
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def xtext(value: str) -> str:
    """RFC 3461 §4 xtext: "+" and "=", controls, space and non-ASCII (as UTF-8 bytes) become "+HH"."""
    return "".join(chr(b) if 33 <= b <= 126 and b not in (43, 61) else f"+{b:02X}" for b in value.encode("utf-8"))


def _reply_of(exc: aiosmtplib.SMTPResponseException) -> Reply:
    return parse_reply(exc.code, exc.message.split("\n"))


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

    async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        """One outcome per recipient; recipients are grouped by domain (or sent together to the
        relayhost). Never raises."""
        if request.requiretls:
            return {a: Failed(REQUIRETLS_UNAVAILABLE) for a in request.addresses}
        groups: dict[str, list[DeliveryRecipient]] = defaultdict(list)
        for r in request.recipients:
            groups["" if self.relay else r.address.rpartition("@")[2].lower()].append(r)
        out: dict[str, DeliveryOutcome] = {}
        for domain, rcpts in groups.items():
            try:
                out.update(await self._deliver_domain(domain, rcpts, request))
            except Exception as exc:  # a bug here must cost a retry, not the message
                log.exception("id=%s delivery to %s failed", request.queue_id, domain or "relayhost")
                out.update({r.address: Deferred(Reply(451, "4.3.0", f"local error: {exc}")) for r in rcpts})
        return out

    async def _hosts(self, domain: str) -> list[tuple[str, int]] | DeliveryOutcome:
        """(hostname, port) to try in order, or an outcome that ends the attempt for the domain."""
        if self.relay is not None:
            return [self.relay]
        if domain.startswith("["):
            return Failed(Reply(550, "5.1.2", f"address literal {domain} is not delivered to"))
        try:
            mx = await self.resolver.lookup(domain, "MX")
        except LookupTimeout as exc:
            return Deferred(Reply(451, "4.4.3", f"MX lookup for {domain}: {exc}"))
        if mx.nxdomain:
            return Failed(Reply(550, "5.1.2", f"domain {domain} does not exist"))
        ranked: list[tuple[int, str]] = []
        for rec in mx.records:
            pref, _, exchange = rec.partition(" ")
            ranked.append((int(pref), exchange.strip().rstrip(".")))
        if any(ex in ("", "@") for _, ex in ranked):
            return Failed(Reply(556, "5.1.10", f"domain {domain} accepts no mail (null MX, RFC 7505)"))
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

    async def _deliver_domain(self, domain: str, rcpts: list[DeliveryRecipient],
                              request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        hosts = await self._hosts(domain)
        if not isinstance(hosts, list):
            return {r.address: hosts for r in rcpts}
        last: DeliveryOutcome = Deferred(Reply(451, "4.4.4", f"no reachable mail server for {domain or 'relayhost'}"))
        for host, port in hosts:
            addresses = await self._addresses(host)
            if not addresses:
                last = Deferred(Reply(451, "4.4.4", f"no address for mail server {host}"))
            for ip in addresses:
                try:
                    try:
                        return await self._session(host, ip, port, rcpts, request, tls=True)
                    except _TlsFailed as exc:
                        log.warning("id=%s %s[%s]: STARTTLS failed (%s); sending in plain text",
                                    request.queue_id, host, ip, exc)
                        return await self._session(host, ip, port, rcpts, request, tls=False)
                except _NextHost as exc:
                    last = exc.outcome
                    log.info("id=%s %s[%s]:%d: %s; trying next", request.queue_id, host, ip, port, exc)
        return {r.address: last for r in rcpts}

    async def _session(self, host: str, ip: str, port: int, rcpts: list[DeliveryRecipient],
                       request: DeliveryRequest, *, tls: bool) -> dict[str, DeliveryOutcome]:
        where = f"{host}[{ip}]:{port}"
        smtp = aiosmtplib.SMTP(hostname=ip, port=port, local_hostname=self.local_hostname,
                               timeout=self.command_timeout, start_tls=False, use_tls=False)
        try:
            await smtp.connect(timeout=self.connect_timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _NextHost(Deferred(Reply(451, "4.4.1", f"connect to {where}: {exc}"))) from None
        try:
            return await self._transaction(smtp, host, where, rcpts, request, tls=tls)
        except aiosmtplib.SMTPResponseException as exc:
            outcome = outcome_of(_reply_of(exc), remote=host)
            if not isinstance(outcome, Failed):  # 4xx (or nonsense) before RCPT: the next host may do better
                raise _NextHost(Deferred(outcome.reply, host)) from None
            return {r.address: outcome for r in rcpts}
        except (aiosmtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            raise _NextHost(Deferred(Reply(451, "4.4.2", f"{where}: {exc}"))) from None
        finally:
            try:
                await smtp.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def _transaction(self, smtp: aiosmtplib.SMTP, host: str, where: str, rcpts: list[DeliveryRecipient],
                           request: DeliveryRequest, *, tls: bool) -> dict[str, DeliveryOutcome]:
        await smtp.ehlo()
        used = "plain text"
        if tls and smtp.supports_extension("starttls"):
            try:
                await smtp.starttls(server_hostname=host, tls_context=self.tls_context)
            except (aiosmtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
                raise _TlsFailed(str(exc) or type(exc).__name__) from None
            info = smtp.get_transport_info("ssl_object")
            used = info.version() if info is not None else "TLS"
        options: list[str] = []
        if request.smtputf8:
            if not smtp.supports_extension("smtputf8"):
                refused = Failed(Reply(550, "5.6.7", f"{where} does not support SMTPUTF8"))
                return {r.address: refused for r in rcpts}
            options.append("SMTPUTF8")
        if request.body_8bitmime and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        dsn = smtp.supports_extension("dsn")
        if dsn and request.dsn_ret:
            options.append(f"RET={request.dsn_ret}")
        if dsn and request.dsn_envid:
            options.append(f"ENVID={xtext(request.dsn_envid)}")
        await smtp.mail(request.sender, options=options, encoding="utf-8")
        out: dict[str, DeliveryOutcome] = {}
        accepted: list[str] = []
        for r in rcpts:
            try:
                await smtp.rcpt(r.address, options=self._rcpt_options(r) if dsn else None, encoding="utf-8")
                accepted.append(r.address)
            except aiosmtplib.SMTPRecipientRefused as exc:
                out[r.address] = outcome_of(_reply_of(exc), remote=host)
        if not accepted:
            return out
        handoff = Handoff.TRANSFERRED if dsn else Handoff.RELAYED
        try:
            response = await smtp.data(request.message)
            outcome = outcome_of(parse_reply(response.code, response.message.split("\n")), remote=host,
                                 handoff=handoff)
        except aiosmtplib.SMTPDataError as exc:
            outcome = outcome_of(_reply_of(exc), remote=host)
        log.info("id=%s %s (%s): %d recipient(s) %s", request.queue_id, where, used, len(accepted),
                 type(outcome).__name__.lower())
        out.update({a: outcome for a in accepted})
        return out

    @staticmethod
    def _rcpt_options(r: DeliveryRecipient) -> list[str]:
        """RFC 3461 §4.1, §4.2: the sender's NOTIFY as given, ORCPT as "addr-type;xtext"."""
        options = []
        if r.notify:
            options.append("NOTIFY=" + ",".join(r.notify))
        if r.orcpt:
            kind, _, value = r.orcpt.partition(";")
            options.append(f"ORCPT={kind.strip()};{xtext(value.strip())}")
        return options
