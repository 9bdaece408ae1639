"""The MDA role: an LMTP server (RFC 2033) over implicit TLS that writes accepted mail into Maildirs.

- TLS starts with the first byte; with `require_client_cert` the handshake itself fails for a client
  without a certificate from our CA, so nothing but the gateway can speak LMTP here.
- RCPT resolves through the directory: unknown, inactive or foreign → 550 5.1.1; aliases expand to their
  local mailboxes, `user+tag@` reaches `user@`.
- After DATA: one reply per accepted recipient, in order. A full mailbox gives 452 4.2.2 to that recipient
  only. Each 250 is sent after the copy is fsynced into new/ (a 250 is a promise).
- `X-Mailbastion-Junk: yes` files the copy under Junk, honoured only from a client that presented a
  verified certificate; the field is always removed before writing. Each copy gets Return-Path and
  Delivered-To; a message that already carries our Delivered-To for that mailbox is a loop (554 5.4.6).

An alias target outside our domains cannot be delivered here (forwarding is the gateway's job): it is
logged and skipped; an alias with no local target is refused at RCPT.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from mailbastion.core import replies
from mailbastion.core.address import Address, AddressError, parse_address
from mailbastion.core.headers import JUNK
from mailbastion.core.ports import Resolution, ResolutionKind
from mailbastion.core.replies import Reply
from mailbastion.mailbox.header_block import HeaderBlock, to_lf
from mailbastion.mailbox.maildir import MaildirStore, QuotaExceeded

log = logging.getLogger("mailbastion.mda")


class MailboxDirectory(Protocol):
    """What the MDA asks the directory (`mailbastion.directory.Directory` satisfies it)."""

    def resolve(self, address: Address) -> Resolution: ...

    def is_local_domain(self, domain: str) -> bool: ...

    def mailbox_quota(self, address: Address) -> int | None: ...


@dataclass(frozen=True, slots=True)
class RecipientPlan:
    rcpt: str  # as the client wrote it
    mailboxes: tuple[Address, ...]  # local mailboxes it reaches


def _severity(reply: Reply) -> int:
    return 2 if reply.is_temporary else (1 if reply.is_permanent else 0)


class LmtpHandler:
    """aiosmtpd handler hooks for RCPT and DATA (the protocol itself is aiosmtpd's)."""

    def __init__(self, directory: MailboxDirectory, store: MaildirStore, *, max_recipients: int = 100) -> None:
        self.directory = directory
        self.store = store
        self.max_recipients = max_recipients
        self._plans: WeakKeyDictionary[SmtpEnvelope, list[RecipientPlan]] = WeakKeyDictionary()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_RCPT(self, server: Any, session: SmtpSession, envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        plans = self._plans.setdefault(envelope, [])
        if len(plans) >= self.max_recipients:
            return str(replies.TOO_MANY_RECIPIENTS)
        try:
            addr = parse_address(address, allow_utf8=True)
        except AddressError:
            return str(replies.BAD_RECIPIENT_SYNTAX)
        try:
            mailboxes = await asyncio.to_thread(self._mailboxes_of, addr)
        except Exception:  # a directory that cannot answer must not turn into 550 for a real user
            log.exception("directory lookup failed for %s", addr)
            return str(replies.TEMP_FAILURE)
        if not mailboxes:
            log.info("lmtp rcpt refused rcpt=%s", addr)
            return str(replies.UNKNOWN_USER)
        envelope.rcpt_tos.append(address)
        plans.append(RecipientPlan(address, mailboxes))
        return str(replies.RECIPIENT_OK)

    def _mailboxes_of(self, addr: Address) -> tuple[Address, ...]:
        res = self.directory.resolve(addr)
        if res.kind is ResolutionKind.LOCAL:
            return (res.address,)
        if res.kind is ResolutionKind.ALIAS:
            local = tuple(t for t in res.targets if self.directory.is_local_domain(t.domain))
            for t in res.targets:
                if t not in local:
                    log.warning("alias %s: remote target %s is not delivered by the MDA", addr, t)
            return local
        return ()

    async def handle_DATA(self, server: Any, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        self.in_flight += 1
        self.idle.clear()
        try:
            return await self._data(server, envelope)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def _data(self, server: Any, envelope: SmtpEnvelope) -> str:
        plans = self._plans.pop(envelope, [])
        content = envelope.original_content or b""
        trusted = has_verified_client_cert(server)
        block = HeaderBlock.parse(content)
        junk = trusted and any(v.lower() == "yes" for v in block.values(JUNK))
        if block.values(JUNK) and not trusted:
            log.warning("lmtp %s ignored: client presented no verified certificate", JUNK)
        block = block.without(JUNK)
        sender = (envelope.mail_from or "").strip().removeprefix("<").removesuffix(">")  # "<>": null sender
        done: dict[Address, Reply] = {}
        out: list[str] = []
        for plan in plans:
            results = []
            for box in plan.mailboxes:
                if box not in done:
                    done[box] = await asyncio.to_thread(self._deliver_one, box, sender, block, junk)
                results.append(done[box])
            out.append(str(_combine(results)))
        return "\r\n".join(out) if out else str(replies.BAD_SEQUENCE)

    def _deliver_one(self, box: Address, sender: str, block: HeaderBlock, junk: bool) -> Reply:
        if any(v.strip("<> ").lower() == box.normalized for v in block.values("Delivered-To")):
            log.warning("lmtp loop: message already delivered to %s", box)
            return replies.LOOP_DETECTED
        data = to_lf(block.prepend(("Return-Path", f"<{sender}>"), ("Delivered-To", str(box))).to_bytes())
        try:
            path = self.store.deliver(box, data, junk=junk, quota_bytes=self.directory.mailbox_quota(box))
        except QuotaExceeded as exc:
            log.info("lmtp deferred mailbox=%s: %s", box, exc)
            return replies.MAILBOX_FULL
        except OSError:
            log.exception("lmtp delivery to %s failed", box)
            return replies.INSUFFICIENT_STORAGE
        log.info("lmtp delivered mailbox=%s folder=%s size=%d file=%s", box,
                 self.store.junk_folder if junk else "INBOX", len(data), path.name)
        return replies.DELIVERED


def _combine(results: list[Reply]) -> Reply:
    """One reply for a recipient that reached several mailboxes: a temporary failure wins (the sender
    retries; copies already made may repeat, which beats losing one), then success, then refusal."""
    if any(r.is_temporary for r in results):
        return next(r for r in results if r.is_temporary)
    if any(r.is_positive for r in results):
        return replies.DELIVERED
    return max(results, key=_severity) if results else replies.TEMP_FAILURE


def has_verified_client_cert(server: Any) -> bool:
    """True when the TLS peer presented a certificate that our CA verified."""
    transport = getattr(server, "transport", None)
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(obj, ssl.SSLObject | ssl.SSLSocket):
        return False
    try:
        return bool(obj.getpeercert())  # {} unless the certificate was validated
    except (ValueError, ssl.SSLError):
        return False


class _Lmtp(LMTP):
    """aiosmtpd's LMTP, counted so that the server can close idle sessions when it stops."""

    def __init__(self, server: MdaServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mda = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called only after a completed TLS handshake: a client refused by TLS never gets here.
        self._mda.sessions_opened += 1
        self._mda._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._mda._sessions.discard(self)
        super().connection_lost(exc)

    async def push(self, status: Any) -> None:
        # RFC 2033 §4.2: after DATA, one reply per accepted recipient. aiosmtpd answers an oversized or
        # over-long message with a single line, which would leave the client waiting for the others.
        reply = _DATA_FAILURES.get(status) if isinstance(status, str) else None
        if reply is not None and self.envelope is not None and len(self.envelope.rcpt_tos) > 1:
            status = "\r\n".join([str(reply)] * len(self.envelope.rcpt_tos))
        elif reply is not None:
            status = str(reply)
        await super().push(status)


# aiosmtpd's end-of-DATA refusals (exact texts from aiosmtpd.smtp.SMTP.smtp_DATA) → our catalogue.
_DATA_FAILURES = {
    "552 Error: Too much mail data": replies.MESSAGE_TOO_LARGE,
    "500 Line too long (see RFC5321 4.5.3.1.6)": replies.LINE_TOO_LONG,
}


class MdaServer:
    """The LMTP listener. `await start()` binds (port 0 picks one: see `port`), `await stop()` stops
    accepting, waits up to `drain_timeout` for deliveries in progress, then closes every session."""

    def __init__(self, handler: LmtpHandler, ssl_context: ssl.SSLContext, *, host: str, port: int,
                 hostname: str = "localhost", data_size_limit: int | None = None, timeout: float = 120.0,
                 drain_timeout: float = 30.0) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.host, self.port = host, port
        self.hostname = hostname
        self.data_size_limit = data_size_limit
        self.timeout = timeout
        self.drain_timeout = drain_timeout
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[_Lmtp] = set()
        self.sessions_opened = 0  # LMTP sessions after a completed TLS handshake

    def _protocol(self) -> _Lmtp:
        return _Lmtp(self, self.handler, hostname=self.hostname, ident="mailbastion LMTP",
                     data_size_limit=self.data_size_limit, enable_SMTPUTF8=True, decode_data=False,
                     timeout=self.timeout, loop=asyncio.get_running_loop())

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port, ssl=self.ssl_context,
                                                ssl_handshake_timeout=min(self.timeout, 30.0))
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("mda listening on %s:%d (LMTP, implicit TLS)", self.host, self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self.handler.idle.wait(), self.drain_timeout)
        except TimeoutError:
            log.warning("mda stop: %d deliveries still running after %.0fs", self.handler.in_flight,
                        self.drain_timeout)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        self._server = None
        log.info("mda stopped")


__all__ = ["LmtpHandler", "MailboxDirectory", "MdaServer", "RecipientPlan", "has_verified_client_cert"]
