"""The submission listener's handler (RFC 6409): who is logged in, whom they may send as, and what leaves.

The SMTP edge (smtp/) speaks the protocol and offers AUTH only under TLS (STARTTLS on `listen`, implicit TLS
on `listen_tls`); this handler decides, stage by stage:

    AUTH      LoginGuard (directory/login.py) off the event loop: main or app password, active accounts only,
              throttled per account and client, lockouts audited.
                right credentials          235 2.7.0
                anything else              535 5.7.8 Authentication credentials invalid  (one reply for an
                                           unknown user, a wrong password, an inactive account)
                throttled                  454 4.7.0 Too many failed logins ... (back-off doubles per lockout)
                directory unreadable       454 4.7.0 Temporary authentication failure
    MAIL      530 5.7.0 before AUTH; 550 5.7.1 when sending is suspended for the account, or `sender_gate`
              refuses it (the acceptable use policy past its grace period, aup/standing.py); 553 5.7.1 when
              the sender is not the account, one of its aliases, or a send-as grant (Postfix's
              reject_sender_login_mismatch); 450 4.7.1 over a sending limit.
    RCPT      450 4.7.1 over a recipient limit; a sudden fan-out suspends sending (550 5.7.1).
    DATA      550 5.7.1 when the From header is not exactly one address the account may send as; Date and
              Message-ID added when missing (RFC 6409 §8); the outbound encryption policy
              (submission/protection.py: a confidential message may leave in several encrypted parts, be
              held or refused); each part DKIM-signed with the From domain's active keys; then the Outbox
              (relay hop to the gateway, or our outbox): its reply is the user's.

A sign of a hijacked account (submission/limits.py) suspends sending for the account (directory
SendingStore: audited), and alerts: a `submission.alarm` WARNING line, and (hijack.alert = "postmaster") a
message to postmaster@<the account's domain> through the outbox. Receiving and logging in go on.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbastion import metrics
from mailbastion.auth.dkim_verify import verifiable_message
from mailbastion.auth.from_header import analyze_from
from mailbastion.core import replies
from mailbastion.core.address import Address, AddressError, parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock, field_bytes
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.replies import Reply
from mailbastion.directory.login import LoginGuard, LoginOutcome
from mailbastion.directory.sending import SendingStore
from mailbastion.smtp.handler import BaseHandler
from mailbastion.submission.limits import SendingMeter, Sign
from mailbastion.submission.outbox import Outbox, Sent

if TYPE_CHECKING:
    from mailbastion.core.ports import SpoolWriter
    from mailbastion.submission.dkim_signer import DkimSigner
    from mailbastion.submission.protection import Protection

__all__ = ["SubmissionHandler"]

log = logging.getLogger("mailbastion.submission")

THROTTLED = Reply(454, "4.7.0", "Too many failed logins from this account or address; try again later")
NOT_YOURS = "Sender address rejected: not owned by user {account}"  # Postfix's wording
NULL_SENDER = Reply(553, "5.7.1", "Sender address rejected: a submitted message needs your address as sender")
NO_DOMAIN = Reply(550, "5.1.3", "Recipient address needs a domain")
PROXY_AUTH = Reply(535, "5.7.8", "Authentication credentials invalid")  # an authzid other than the login


def suspended_reply(account: str, reason: str) -> Reply:
    return Reply(550, "5.7.1", f"Sending is suspended for {account} ({reason[:200]}); receiving still works. "
                 "Contact your administrator")


@dataclass(eq=False)
class _Session:
    account: str | None = None
    allowed: frozenset[str] = frozenset()
    transactions: int = 0
    facts: dict[str, object] = field(default_factory=dict)


class SubmissionHandler(BaseHandler):
    """StageHandler of the submission listeners. One instance per process; per-session state by session id."""

    auth_mechanisms = ("PLAIN", "LOGIN")

    def __init__(self, *, guard: LoginGuard, sending: SendingStore, meter: SendingMeter, outbox: Outbox,
                 signer: Callable[[], DkimSigner | None] = lambda: None, alert_spool: SpoolWriter | None = None,
                 recipient_delimiter: str = "+", max_recipients: int = 100, add_missing_headers: bool = True,
                 hostname: str = "localhost", protection: Protection | None = None,
                 sender_gate: Callable[[str], Awaitable[Reply | None]] | None = None) -> None:
        self.guard = guard
        self.sending = sending
        self.meter = meter
        self.outbox = outbox
        self.signer = signer
        self.alert_spool = alert_spool  # None: the alarm is the log line only
        self.delimiter = recipient_delimiter
        self.max_recipients = max_recipients
        self.add_missing_headers = add_missing_headers
        self.hostname = hostname
        self.protection = protection  # the outbound encryption policy (None: encryption.enabled = false)
        self.sender_gate = sender_gate  # account -> a refusal or None, at MAIL (aup/standing.py AupGate)
        self._sessions: dict[str, _Session] = {}

    def _session(self, peer: PeerInfo) -> _Session:
        return self._sessions.setdefault(peer.session_id, _Session())

    # -- AUTH -------------------------------------------------------------------------------------

    async def on_connect(self, peer: PeerInfo) -> Reply:
        self._sessions[peer.session_id] = _Session()
        return replies.OK

    async def on_auth(self, peer: PeerInfo, mechanism: str, authzid: str, authcid: str, password: str) -> Reply:
        try:
            result = await asyncio.to_thread(self.guard.attempt, authcid, password, client=peer.ip,
                                             service="submission")
        except Exception as exc:  # noqa: BLE001 - the database: a temporary failure, never a traceback
            log.error("submission.auth directory unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return replies.AUTH_TEMP_FAILURE
        if result.outcome is LoginOutcome.LOCKED_OUT:
            metrics.auth_failure("submission", mechanism)
            return THROTTLED
        if not result.ok:
            metrics.auth_failure("submission", mechanism)
            return replies.AUTH_FAILED
        if authzid and self._norm(authzid) != result.address:
            log.warning("submission.auth refused user=%s authzid=%r: acting as another is not allowed",
                        result.address, authzid[:64])
            return PROXY_AUTH
        session = self._session(peer)
        session.account = result.address
        session.allowed = await asyncio.to_thread(self.sending.allowed_senders, result.address)
        sign = self.meter.login(result.address, peer.ip)
        if sign is not None:
            await self._suspend(result.address, sign, peer)
        return replies.AUTH_OK

    # -- MAIL, RCPT -------------------------------------------------------------------------------

    def _norm(self, text: str | Address) -> str:
        try:
            addr = text if isinstance(text, Address) else parse_address(text.strip().strip("<>"), allow_utf8=True)
        except (AddressError, ValueError):
            return ""
        return (addr.without_tag(self.delimiter) if self.delimiter else addr).normalized

    def _may_send_as(self, session: _Session, address: str | Address) -> bool:
        key = self._norm(address)
        if not key:
            return False
        plain = address.normalized if isinstance(address, Address) else key
        return key in session.allowed or plain in session.allowed

    async def _held(self, account: str) -> Reply | None:
        hold = await asyncio.to_thread(self.sending.hold, account)
        return None if hold is None else suspended_reply(account, hold.reason)

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        session = self._session(peer)
        account = session.account
        if account is None:
            return replies.AUTH_REQUIRED
        try:
            held = await self._held(account)
            if held is None and self.sender_gate is not None:
                held = await self.sender_gate(account)  # e.g. the acceptable use policy not accepted in time
            if held is not None:
                return held
            # Grants and aliases may have changed since the login: read them again for each transaction.
            session.allowed = await asyncio.to_thread(self.sending.allowed_senders, account)
        except Exception as exc:  # noqa: BLE001
            log.error("submission.mail directory unavailable: %s", exc)
            return replies.TEMP_FAILURE
        if envelope.sender is None:
            return NULL_SENDER
        if not self._may_send_as(session, envelope.sender):
            log.warning("submission.sender_mismatch user=%s sender=%s client=%s", account, envelope.sender, peer.ip)
            return Reply(553, "5.7.1", f"<{envelope.sender}>: " + NOT_YOURS.format(account=account))
        limit = self.meter.check(account, 1)
        return limit if limit is not None else replies.SENDER_OK

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        session = self._session(peer)
        account = session.account
        if account is None:
            return replies.AUTH_REQUIRED
        if rcpt.is_bare_postmaster:
            return NO_DOMAIN
        if len(envelope.recipients) >= self.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        limit = self.meter.check(account, len(envelope.recipients) + 1)
        if limit is not None:
            return limit
        sign = self.meter.fanout(account, [*(str(r) for r in envelope.recipients), str(rcpt)])
        if sign is not None:
            return await self._suspend(account, sign, peer)
        return replies.RECIPIENT_OK

    # -- DATA -------------------------------------------------------------------------------------

    async def on_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Reply:
        session = self._session(peer)
        account = session.account
        if account is None:
            return replies.AUTH_REQUIRED
        session.transactions += 1
        try:
            held = await self._held(account)
        except Exception as exc:  # noqa: BLE001
            log.error("submission.data directory unavailable: %s", exc)
            return replies.TEMP_FAILURE
        if held is not None:
            return held
        block = message.header
        sender = analyze_from(block)
        if sender.address is None or sender.refuse:
            return replies.FROM_INVALID
        if not self._may_send_as(session, sender.address):
            log.warning("submission.from_mismatch user=%s from=%s client=%s", account, sender.address, peer.ip)
            return Reply(550, "5.7.1", f"From header <{sender.address}>: " + NOT_YOURS.format(account=account))
        raw = self._completed(block, sender.domain or self.hostname)
        parts: list[tuple[Envelope, bytes]] = [(envelope, raw)]
        plan = None
        if self.protection is not None:
            try:
                plan = await self.protection.plan(raw, envelope)
                if plan.refusal is None:
                    await self.protection.keep_held(plan, raw, envelope, client=peer.ip)  # before anything leaves
            except Exception as exc:  # noqa: BLE001 - pick-up store or hold folder: try again, nothing sent
                log.error("submission.protect failed for %s: %s", account, exc)
                return Reply(451, "4.3.0", "Not sent yet: the encryption policy could not be applied; try again later")
            if plan.refusal is not None:
                return plan.refusal
            parts = list(plan.sends)
        sents: list[Sent] = []
        signed_parts = 0
        for part_envelope, body in parts:
            signed = await self._sign(body, sender.domain)
            if signed is None:
                return Reply(451, "4.7.0", "Not sent yet: the message could not be DKIM-signed; try again later")
            signed_parts += signed.startswith(b"DKIM-Signature")
            sents.append(await self.outbox.send(part_envelope, signed, client=peer.ip))
        if plan is not None and plan.notice is not None and self.alert_spool is not None and envelope.sender:
            try:  # to the sender: held recipients, pick-up codes (through our own path, into her mailbox)
                await self.alert_spool.commit(Envelope(None, (envelope.sender,)), plan.notice, client="127.0.0.1")
            except Exception as exc:  # noqa: BLE001
                log.error("submission.protect could not queue the notice to %s: %s", envelope.sender, exc)
        reply = _combined(sents, plan.held if plan is not None else ())
        rcpts = [str(r) for r in envelope.recipients]
        if reply.is_positive:
            self.meter.record(account, rcpts)
        if any(s.refused for s in sents):
            sign = self.meter.bounce(account)
            if sign is not None:
                await self._suspend(account, sign, peer)
        log.info("submission.message user=%s sender=%s from=%s nrcpt=%d size=%d client=%s parts=%d signed=%d "
                 "confidential=%s held=%d reply=%d%s", account, envelope.sender_text, sender.address, len(rcpts),
                 len(raw), peer.ip, len(parts), signed_parts,
                 "yes" if plan is not None and plan.decision is not None and plan.decision.classification else "no",
                 len(plan.held) if plan is not None else 0, reply.code,
                 " outbox" if any(s.queued_here for s in sents) else "")
        return reply

    async def _sign(self, body: bytes, domain: str | None) -> bytes | None:
        """`body` with its DKIM signatures on top (as it is when the domain has no active key); None when a
        key exists but cannot be used (the message must not leave unsigned then)."""
        signer = self.signer()
        if signer is None:
            return body
        body = verifiable_message(body)  # malformed header lines dropped: a signature over them breaks
        try:
            return await signer.sign_async(body, domain) + body
        except Exception as exc:  # noqa: BLE001
            log.error("submission.dkim signing failed for %s: %s", domain, exc)
            return None

    def _completed(self, block: HeaderBlock, domain: str) -> bytes:
        """The message with the Date and Message-ID an MSA adds when the client gave none (RFC 6409 §8)."""
        if not self.add_missing_headers:
            return block.to_bytes()
        eol = b"\r\n" if (block.fields[0].raw.endswith(b"\r\n") if block.fields else True) else b"\n"
        if block.first("date") is None:
            block = block.append_field(field_bytes("Date", email.utils.formatdate(localtime=False), eol=eol))
        if block.first("message-id") is None:
            block = block.append_field(field_bytes("Message-ID", f"<{secrets.token_hex(12)}@{domain}>", eol=eol))
        return block.to_bytes()

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self._sessions.pop(peer.session_id, None)


    # -- a hijacked account -----------------------------------------------------------------------

    async def _suspend(self, account: str, sign: Sign, peer: PeerInfo) -> Reply:
        reason = f"suspected hijack ({sign.kind}): {sign.detail}"
        try:
            new = await asyncio.to_thread(self.sending.suspend, account, reason=reason, by="submission:hijack",
                                          details={"sign": sign.kind, "client": peer.ip})
        except Exception as exc:  # noqa: BLE001 - still refuse this message; the alarm says it could not be kept
            log.error("submission.alarm could not record the suspension of %s: %s", account, exc)
            new = True
        if new:
            log.warning("submission.alarm account=%s sign=%s client=%s sending suspended: %s "
                        "(mailbastion account unsuspend %s --reason ...)", account, sign.kind, peer.ip, sign.detail,
                        account)
            await self._alert_postmaster(account, reason, peer)
        return suspended_reply(account, reason)

    async def _alert_postmaster(self, account: str, reason: str, peer: PeerInfo) -> None:
        if self.alert_spool is None:
            return
        domain = account.rpartition("@")[2]
        postmaster = parse_address(f"postmaster@{domain}")
        body = (f"Sending has been suspended for {account}.\r\n\r\nWhy: {reason}\r\nLast client: {peer.ip}\r\n\r\n"
                "Receiving and logging in still work. Check the account (reset its password and app passwords if\r\n"
                f"it was taken over), then lift the suspension:\r\n\r\n"
                f"    mailbastion account unsuspend {account} --reason \"...\"\r\n")
        head = (f"From: mailbastion <postmaster@{domain}>\r\nTo: <postmaster@{domain}>\r\n"
                f"Subject: [mailbastion alarm] sending suspended for {account}\r\n"
                f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{secrets.token_hex(12)}@{domain}>\r\n"
                "Auto-Submitted: auto-generated\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
        try:
            await self.alert_spool.commit(Envelope(None, (postmaster,)), (head + body).encode(), client="127.0.0.1")
        except Exception as exc:  # noqa: BLE001 - the log line above is the alarm of last resort
            log.error("submission.alarm could not queue the message to postmaster: %s", exc)


def _combined(sents: list[Sent], held: tuple[Address, ...]) -> Reply:
    """One reply for the parts of a message (several only for a confidential one)."""
    kept = f"; kept for {len(held)} recipient(s) without a key (you get a notice)" if held else ""
    if not sents:
        return Reply(250, "2.0.0", "Ok: confidential message kept" + kept)
    good = [s.reply for s in sents if s.reply.is_positive]
    bad = [s.reply for s in sents if not s.reply.is_positive]
    if not bad:
        reply = good[0] if len(good) == 1 else Reply(250, "2.0.0", f"Ok: sent in {len(good)} parts")
        return reply.with_text(reply.text + kept) if kept else reply
    if not good:
        return bad[0]
    return Reply(250, "2.0.0", f"Ok: sent to some recipients; others refused: {bad[0].code} {bad[0].text}"[:400] + kept)
