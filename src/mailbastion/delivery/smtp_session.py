"""One SMTP connection to one MX address: opened under the outbound TLS policy, then used for one or more
transactions (the connection cache hands it from message to message).

    session = await open_session(target, tls=outbound_tls, ...)    # connect, EHLO, STARTTLS as the policy says
    outcomes = await session.transaction(request, rcpts)            # MAIL, RCPT each, DATA
    reusable = await session.reset()                                 # RSET before it is cached

Errors are values or one of two exceptions, never a traceback:
  - `NextHost(outcome)`: this address cannot take the message now (no connection, a refusing greeting, a
    TLS policy failure, 4xx to MAIL): the caller tries the next address or MX host; `outcome` is what
    the recipients get if none is left.
  - `SessionLost(data_sent)`: the connection died in a transaction. Before any message data went out, a
    cached session is replaced by a fresh one; after, the accepted recipients are deferred (never sent
    twice by us on purpose; RFC 5321 §6.1 prefers a rare duplicate to a loss).

Content rules at MAIL (RFC 6531, RFC 6152):
  - SMTPUTF8 is asked for only when the message needs it (a non-ASCII address or header field); a message
    that needs it and meets a server without it fails, 553 5.6.7 (RFC 6531 §3.2, as Postfix does). A
    message flagged SMTPUTF8 that needs nothing of it is sent without the parameter (the downgrade
    Postfix's smtputf8_autodetect does).
  - BODY=8BITMIME when the content has 8-bit octets (or the client declared it) and the server offers it;
    8-bit content to a server without 8BITMIME fails with 554 5.6.3: we do not rewrite messages into 7 bit,
    which would break their DKIM signatures (RFC 6152 §3 allows returning them instead).
  - DSN (RFC 3461 §4): RET/ENVID on MAIL, NOTIFY/ORCPT on RCPT when the server offers DSN; success is then
    the next hop's to report (Handoff.TRANSFERRED), otherwise ours (Handoff.RELAYED).
  - REQUIRETLS (RFC 8689): the policy's mail option, set only after verified TLS to a server offering it.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import aiosmtplib

from mailbastion.core.outcome import Deferred, DeliveryOutcome, Failed, Handoff, outcome_of, parse_reply
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.core.xtext import xtext
from mailbastion.outbound import OutboundTls, SessionTls, TlsHandshakeFallback, TlsPolicyFailure, TlsRequirement

log = logging.getLogger("mailbastion.delivery.smtp")

__all__ = ["NextHost", "SessionLost", "SmtpSession", "Target", "needs_smtputf8", "open_session", "xtext"]

_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError, TimeoutError)


class NextHost(Exception):
    """This address could not take the message; try the next one (the outcome says why)."""

    def __init__(self, outcome: DeliveryOutcome) -> None:
        super().__init__(outcome.reply.text)
        self.outcome = outcome


class SessionLost(Exception):
    """The connection broke in a transaction; `data_sent`: message data may have reached the server."""

    def __init__(self, where: str, reason: str, *, data_sent: bool) -> None:
        super().__init__(f"{where}: {reason}")
        self.data_sent = data_sent


def _reply_of(exc: aiosmtplib.SMTPResponseException) -> Reply:
    return parse_reply(exc.code, exc.message.split("\n"))


def header_section(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    return message if end < 0 else message[:end]


def needs_smtputf8(sender: str, recipients: Sequence[str], message: bytes) -> bool:
    """RFC 6531: does delivering this message need SMTPUTF8 (a non-ASCII address or header field)?"""
    return (not sender.isascii() or any(not r.isascii() for r in recipients)
            or not header_section(message).isascii())


@dataclass(frozen=True, slots=True)
class Target:
    """Where one session goes and what TLS it must have. `implicit` (relay to our gateway): TLS from the
    first byte with that context, the server's certificate must name `server_name`; otherwise `req` is
    the outbound policy's requirement for this MX host."""

    host: str
    ip: str
    port: int
    req: TlsRequirement | None = None
    implicit: ssl.SSLContext | None = None
    server_name: str = ""

    @property
    def where(self) -> str:
        return f"{self.host}[{self.ip}]:{self.port}"

    @property
    def key(self) -> Hashable:
        """Sessions are reused only for the same address and the same TLS requirement (which names the
        destination domain): a session checked against one policy never carries mail another demands."""
        return (self.ip, self.port, self.host, self.req, self.server_name)


@dataclass(eq=False)
class SmtpSession:
    smtp: aiosmtplib.SMTP
    target: Target
    tls: SessionTls
    opened: float = field(default_factory=time.monotonic)
    transactions: int = 0
    expiry: object = None  # the cache's idle timer while cached

    @property
    def where(self) -> str:
        return self.target.where

    @property
    def is_open(self) -> bool:
        return self.smtp.is_connected

    def describe(self) -> str:
        return self.tls.describe() if self.tls.tls else "plain text"

    async def close(self) -> None:
        try:
            await self.smtp.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.smtp.close()

    async def reset(self) -> bool:
        """RSET after a transaction (Postfix does it before caching a session). True: clean for the next."""
        if not self.is_open:
            return False
        try:
            await self.smtp.rset(timeout=10)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            return False
        return True

    # -- one transaction ----------------------------------------------------------------------------------

    def mail_options(self, request: DeliveryRequest, rcpts: Sequence[DeliveryRecipient]) -> list[str] | Failed:
        smtp, host = self.smtp, self.target.host
        options = list(self.tls.mail_options)
        if request.requiretls and self.target.implicit is not None:
            # Our own hop (internal -> gateway, verified mutual TLS): the gateway must keep the demand.
            if not smtp.supports_extension("requiretls"):
                return Failed(Reply(550, "5.7.30", f"{self.where} does not offer REQUIRETLS (RFC 8689 §5)"), host)
            options.append("REQUIRETLS")
        utf8 = needs_smtputf8(request.sender, [r.address for r in rcpts], request.message)
        if utf8:
            if not smtp.supports_extension("smtputf8"):
                return Failed(Reply(553, "5.6.7", f"{self.where} does not support SMTPUTF8, which this message "
                                    "needs (non-ASCII address or header; RFC 6531)"), host)
            options.append("SMTPUTF8")
        if request.body_8bitmime or not request.message.isascii():
            if smtp.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            elif not request.message.isascii() and not utf8:
                return Failed(Reply(554, "5.6.3", f"{self.where} does not support 8BITMIME and the message has "
                                    "8-bit content (conversion to 7 bit is not done; RFC 6152)"), host)
        if smtp.supports_extension("dsn"):
            if request.dsn_ret:
                options.append(f"RET={request.dsn_ret}")
            if request.dsn_envid:
                options.append(f"ENVID={xtext(request.dsn_envid)}")
        return options

    async def transaction(self, request: DeliveryRequest,
                          rcpts: Sequence[DeliveryRecipient]) -> dict[str, DeliveryOutcome]:
        """MAIL, RCPT per recipient, DATA. One outcome per recipient of `rcpts`. Raises NextHost (4xx to
        MAIL: another MX may take it) and SessionLost."""
        smtp, host = self.smtp, self.target.host
        options = self.mail_options(request, rcpts)
        if isinstance(options, Failed):
            return {r.address: options for r in rcpts}
        self.transactions += 1
        try:
            await smtp.mail(request.sender, options=options, encoding="utf-8")
        except aiosmtplib.SMTPSenderRefused as exc:
            if exc.code == 421:  # the server is closing this session (too many transactions, shutting down)
                raise SessionLost(self.where, exc.message, data_sent=False) from None
            outcome = outcome_of(_reply_of(exc), remote=host)
            if not isinstance(outcome, Failed):  # 4xx (or nonsense) to MAIL: the next host may do better
                raise NextHost(Deferred(outcome.reply, host)) from None
            return {r.address: outcome for r in rcpts}
        except _LOST as exc:
            raise SessionLost(self.where, str(exc) or type(exc).__name__, data_sent=False) from None
        dsn = smtp.supports_extension("dsn")
        out: dict[str, DeliveryOutcome] = {}
        accepted: list[str] = []
        for r in rcpts:
            try:
                await smtp.rcpt(r.address, options=rcpt_options(r) if dsn else None, encoding="utf-8")
                accepted.append(r.address)
            except aiosmtplib.SMTPRecipientRefused as exc:
                if exc.code == 421:
                    raise SessionLost(self.where, exc.message, data_sent=False) from None
                out[r.address] = outcome_of(_reply_of(exc), remote=host)
            except _LOST as exc:
                raise SessionLost(self.where, str(exc) or type(exc).__name__, data_sent=False) from None
        if not accepted:
            return out
        handoff = Handoff.TRANSFERRED if dsn else Handoff.RELAYED
        try:
            response = await smtp.data(request.message)
            outcome = outcome_of(parse_reply(response.code, response.message.split("\n")), remote=host,
                                 handoff=handoff)
        except aiosmtplib.SMTPDataError as exc:
            outcome = outcome_of(_reply_of(exc), remote=host)
        except _LOST as exc:
            reason = str(exc) or type(exc).__name__
            log.warning("id=%s %s: connection lost during DATA (%s): deferred", request.queue_id, self.where, reason)
            outcome = Deferred(Reply(451, "4.4.2", f"{self.where}: connection lost during DATA: {reason}"), host)
        log.info("id=%s %s (%s%s): %d recipient(s) %s", request.queue_id, self.where, self.describe(),
                 f", reused #{self.transactions}" if self.transactions > 1 else "", len(accepted),
                 type(outcome).__name__.lower())
        out.update({a: outcome for a in accepted})
        return out


def rcpt_options(r: DeliveryRecipient) -> list[str]:
    """RFC 3461 §4.1, §4.2: the sender's NOTIFY as given, ORCPT as "addr-type;xtext"."""
    options = []
    if r.notify:
        options.append("NOTIFY=" + ",".join(r.notify))
    if r.orcpt:
        kind, _, value = r.orcpt.partition(";")
        options.append(f"ORCPT={kind.strip()};{xtext(value.strip())}")
    return options


# -- opening ------------------------------------------------------------------------------------------------


async def _connect(target: Target, *, local_hostname: str, connect_timeout: float,
                   command_timeout: float) -> aiosmtplib.SMTP:
    """A connected client past a 220 greeting. Raises NextHost."""
    implicit = target.implicit is not None
    smtp = aiosmtplib.SMTP(hostname=target.ip, port=target.port, local_hostname=local_hostname,
                           timeout=command_timeout, start_tls=False, use_tls=implicit,
                           tls_context=target.implicit, validate_certs=implicit)
    try:
        await smtp.connect(timeout=connect_timeout)
    except aiosmtplib.SMTPConnectResponseError as exc:
        # A refusing greeting: the next MX may take it (Postfix smtp_skip_5xx_greeting); if none does, the
        # last reply stands (a 5xx one fails the message).
        smtp.close()
        raise NextHost(outcome_of(_reply_of(exc), remote=target.host)) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        smtp.close()
        raise NextHost(Deferred(Reply(451, "4.4.1", f"connect to {target.where}: {exc}"))) from None
    return smtp


def _peer_names(smtp: aiosmtplib.SMTP) -> set[str]:
    obj = smtp.get_transport_info("ssl_object")
    cert = obj.getpeercert() if obj is not None else None
    if not cert:
        return set()
    names = {v for rdn in cert.get("subject", ()) for (k, v) in rdn if k == "commonName"}
    names |= {v for k, v in cert.get("subjectAltName", ()) if k == "DNS"}
    return names


async def open_session(target: Target, *, tls: OutboundTls | None, local_hostname: str, connect_timeout: float,
                       command_timeout: float) -> SmtpSession:
    """Connect, greet and secure a session as `target` says. Raises NextHost (with TLS policy failures as
    their refusal: temporary unless REQUIRETLS's, never clear text where the policy wants TLS)."""
    smtp = await _connect(target, local_hostname=local_hostname, connect_timeout=connect_timeout,
                          command_timeout=command_timeout)
    try:
        if target.implicit is not None:
            return await _greet_implicit(smtp, target)
        assert tls is not None and target.req is not None
        try:
            done = await tls.secure(smtp, target.req, receiving_ip=target.ip)
        except TlsHandshakeFallback as exc:
            # Opportunistic TLS only: the same host again in clear text (recorded as a failure already).
            log.warning("%s: STARTTLS failed (%s); sending in plain text", target.where, exc)
            smtp.close()
            smtp = await _connect(target, local_hostname=local_hostname, connect_timeout=connect_timeout,
                                  command_timeout=command_timeout)
            done = await tls.secure(smtp, target.req, receiving_ip=target.ip, allow_tls=False)
        return SmtpSession(smtp, target, done)
    except TlsPolicyFailure as exc:
        await _quit(smtp)
        r = exc.refusal
        reply = Reply(550 if r.permanent else 451, r.status, r.text)
        raise NextHost(Failed(reply, target.host) if r.permanent else Deferred(reply, target.host)) from None
    except aiosmtplib.SMTPResponseException as exc:
        await _quit(smtp)
        outcome = outcome_of(_reply_of(exc), remote=target.host)
        raise NextHost(outcome if isinstance(outcome, Failed) else Deferred(outcome.reply, target.host)) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        smtp.close()
        raise NextHost(Deferred(Reply(451, "4.4.2", f"{target.where}: {exc}"))) from None


async def _greet_implicit(smtp: aiosmtplib.SMTP, target: Target) -> SmtpSession:
    """Our gateway's relay listener: the CA verified its certificate in the handshake; it must also be the
    gateway role's (a certificate of our CA for another role is refused)."""
    names = _peer_names(smtp)
    if target.server_name not in names:
        await _quit(smtp)
        raise NextHost(Deferred(Reply(451, "4.7.5", f"{target.where}: certificate names {sorted(names)}, not "
                                      f"{target.server_name!r}")))
    await smtp.ehlo()
    obj = smtp.get_transport_info("ssl_object")
    version = obj.version() if obj is not None else "TLS"
    from mailbastion.outbound.check import TlsCheck

    return SmtpSession(smtp, target, SessionTls(True, True, TlsCheck(True, True, None, f"our CA: {target.server_name}",
                                                                      str(version), "")))


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit(timeout=5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()
