"""The gateway's StageHandler: runs the pipeline at every stage and turns the verdict into a reply.

Pre-DATA stages (CONNECT, HELO, MAIL, RCPT) act only on forced outcomes of SOFT_REJECT or worse; a
forced refusal at RCPT refuses that recipient only. Their symbols are kept and join the DATA score.

`RCPT TO:<Postmaster>` without a domain (RFC 5321 §4.1.1.3, which every server must accept) is the
postmaster of our primary domain: `smtp.postmaster_domain`, else the closest of our domains above
`server.hostname` (mail.example.org → example.org). It is checked and spooled as that address.
The MX authenticates nobody: no AUTH is offered (`BaseHandler`'s defaults).

At DATA, in this order:
  1. strip every incoming `X-Mailbastion-*` header (only we may set them, core/headers.py);
  2. count Received headers: `smtp.max_hops` or more is a loop, 554 5.4.6 (RFC 5321 §6.3);
  3. run the DATA checks and decide the Verdict (a forced outcome beats the score);
  4. apply the verdict's edits, prepend our Received and, from ADD_HEADER up, X-Spam-Score/Status;
  5. REJECT → 5xx; SOFT_REJECT → 4xx; QUARANTINE → quarantine.put; JUNK → commit (the
     verdict's `folder` rides the queue record to the LMTP link as `XFOLDER=Junk`, then the Maildir folder);
     else commit. A 250 only after the store returns (a 250 is a promise); SpoolFull → 452 4.3.1.
Every message that reaches DATA, and every refused recipient, gets one `mailbastion.smtp` log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from mailbastion.config.schema import Settings
from mailbastion.core import headers as hdr
from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import MailError
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.ports import QuarantineSink, RecipientResolver, SpoolWriter
from mailbastion.core.replies import Reply
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, Edit, Forced, Symbol, Verdict
from mailbastion.gateway.logline import log_message
from mailbastion.gateway.received import count_received, received_header
from mailbastion.gateway.rewrite import apply_edits, without_internal
from mailbastion.policy.check import CheckContext
from mailbastion.policy.pipeline import Pipeline, StageOutcome
from mailbastion.smtp.handler import BaseHandler

__all__ = ["GatewayHandler"]

log = logging.getLogger("mailbastion.smtp")


def _stronger(a: Forced | None, b: Forced | None) -> Forced | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.action > a.action else a


@dataclass(eq=False)
class _Transaction:
    facts: dict[type, Any]
    symbols: list[Symbol] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    forced: Forced | None = None  # a forced outcome below refusal (e.g. QUARANTINE), kept for DATA
    number: int = 0


@dataclass(eq=False)
class _Session:
    connect_symbols: list[Symbol] = field(default_factory=list)
    helo_symbols: list[Symbol] = field(default_factory=list)
    facts: dict[type, Any] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    forced: Forced | None = None
    tx: _Transaction | None = None
    transactions: int = 0

    @property
    def symbols(self) -> list[Symbol]:
        return [*self.connect_symbols, *self.helo_symbols]


class GatewayHandler(BaseHandler):
    """StageHandler of the inbound (MX) gateway. One instance serves every connection of a process;
    per-connection state is keyed by `peer.session_id` and dropped in `on_disconnect`."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        recipients: RecipientResolver,
        spool: SpoolWriter,
        quarantine: QuarantineSink | None = None,
    ) -> None:
        self.hostname = settings.server.hostname
        self.postmaster_domain = settings.smtp.postmaster_domain
        self.max_hops = settings.smtp.max_hops
        self.pipeline = pipeline
        self.recipients = recipients
        self.spool = spool
        self.quarantine = quarantine
        self._sessions: dict[str, _Session] = {}

    # -- helpers -------------------------------------------------------------------------------

    def _session(self, peer: PeerInfo) -> _Session:
        session = self._sessions.get(peer.session_id)
        if session is None:
            session = self._sessions[peer.session_id] = _Session()
        return session

    def _tx(self, session: _Session) -> _Transaction:
        if session.tx is None:
            session.transactions += 1
            session.tx = _Transaction(facts=dict(session.facts), number=session.transactions)
        return session.tx

    async def _run(self, stage: Stage, peer: PeerInfo, envelope: Envelope, symbols: list[Symbol],
                   facts: dict[type, Any], *, rcpt: Address | None = None,
                   message: SpooledMessage | None = None) -> StageOutcome:
        ctx = CheckContext(stage, peer, envelope, rcpt=rcpt, message=message, symbols=list(symbols), facts=facts)
        return await self.pipeline.run_stage(ctx)

    def postmaster(self) -> Address | None:
        """Whose mailbox the domain-less `<Postmaster>` is (see the module docstring); None when
        neither the setting nor the host name names one of our domains."""
        if self.postmaster_domain:
            return Address("postmaster", self.postmaster_domain.lower())
        labels = self.hostname.lower().rstrip(".").split(".")
        for i in range(len(labels) - 1):
            domain = ".".join(labels[i:])
            if self.recipients.is_local_domain(domain):
                return Address("postmaster", domain)
        return None

    def _with_postmaster(self, envelope: Envelope) -> Envelope:
        if not any(r.is_bare_postmaster for r in envelope.recipients):
            return envelope
        mapped = self.postmaster()
        if mapped is None:
            return envelope
        return replace(envelope, recipients=tuple(mapped if r.is_bare_postmaster else r for r in envelope.recipients))

    @staticmethod
    def _refusal(forced: Forced | None) -> Reply | None:
        if forced is None or forced.action < Action.SOFT_REJECT:
            return None
        if forced.action == Action.SOFT_REJECT and not forced.reply.is_temporary:
            return replies.SOFT_REJECT
        if forced.action == Action.REJECT and not forced.reply.is_permanent:
            return replies.REJECTED
        return forced.reply

    # -- stages --------------------------------------------------------------------------------

    async def on_connect(self, peer: PeerInfo) -> Reply:
        session = self._sessions[peer.session_id] = _Session()  # XCLIENT/PROXY: a fresh start
        outcome = await self._run(Stage.CONNECT, peer, Envelope(None), [], session.facts)
        session.connect_symbols = list(outcome.symbols)
        session.edits.extend(outcome.edits)
        refusal = self._refusal(outcome.forced)
        if refusal is not None:
            log_message(peer, None, stage="connect", action="reject", reply=refusal, forced=outcome.forced,
                        symbols=outcome.symbols)
            return refusal
        session.forced = outcome.forced
        return replies.OK

    async def on_helo(self, peer: PeerInfo, helo: str) -> Reply:
        session = self._session(peer)
        outcome = await self._run(Stage.HELO, peer, Envelope(None, helo=helo), session.connect_symbols,
                                  session.facts)
        refusal = self._refusal(outcome.forced)
        if refusal is not None:
            return refusal
        session.helo_symbols = list(outcome.symbols)
        session.forced = _stronger(session.forced, outcome.forced)
        return replies.OK

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        session = self._session(peer)
        session.tx = None
        tx = self._tx(session)
        outcome = await self._run(Stage.MAIL, peer, envelope, session.symbols, tx.facts)
        refusal = self._refusal(outcome.forced)
        if refusal is not None:
            session.tx = None
            log_message(peer, envelope, stage="mail", action="reject", reply=refusal, forced=outcome.forced,
                        symbols=outcome.symbols)
            return refusal
        tx.symbols.extend(outcome.symbols)
        tx.edits.extend(outcome.edits)
        tx.forced = _stronger(session.forced, outcome.forced)
        return replies.SENDER_OK

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        session = self._session(peer)
        tx = self._tx(session)
        if rcpt.is_bare_postmaster:
            mapped = self.postmaster()
            if mapped is None:
                log.warning("RCPT TO:<Postmaster>: no local domain above %s; set smtp.postmaster_domain",
                            self.hostname)
                return replies.UNKNOWN_USER
            rcpt = mapped
        outcome = await self._run(Stage.RCPT, peer, envelope, [*session.symbols, *tx.symbols], tx.facts,
                                  rcpt=rcpt)
        refusal = self._refusal(outcome.forced)
        if refusal is not None:
            log_message(peer, envelope, stage="rcpt", action="reject", reply=refusal, forced=outcome.forced,
                        symbols=outcome.symbols, rcpt=rcpt)
            return refusal  # this recipient only; the transaction goes on
        tx.symbols.extend(outcome.symbols)
        tx.edits.extend(outcome.edits)
        tx.forced = _stronger(tx.forced, outcome.forced)
        return replies.RECIPIENT_OK

    async def on_reset(self, peer: PeerInfo) -> None:
        session = self._sessions.get(peer.session_id)
        if session is not None:
            session.tx = None

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self._sessions.pop(peer.session_id, None)

    # -- DATA ----------------------------------------------------------------------------------

    async def on_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Reply:
        session = self._session(peer)
        tx = self._tx(session)
        envelope = self._with_postmaster(envelope)
        block, stripped = without_internal(message.header)
        clean = SpooledMessage(block.to_bytes()) if stripped else message
        hops = count_received(clean.header)
        if hops >= self.max_hops:
            log_message(peer, envelope, stage="data", action="reject", reply=replies.LOOP_DETECTED,
                        size=clean.size, extra={"hops": hops})
            return replies.LOOP_DETECTED
        seen = [*session.symbols, *tx.symbols]
        outcome = await self._run(Stage.DATA, peer, envelope, seen, tx.facts, message=clean)
        forced = _stronger(tx.forced, outcome.forced)
        verdict = self.pipeline.decide([*seen, *outcome.symbols], forced,
                                       [*session.edits, *tx.edits, *outcome.edits])
        queue_id = ""
        try:
            reply, queue_id = await self._deliver(peer, envelope, clean, verdict, hops, tx.number)
        except MailError as exc:
            reply = exc.reply
            log.warning("store failed session=%s: %s: %s", peer.session_id, type(exc).__name__, exc)
        except Exception:
            log_message(peer, envelope, stage="data", action="error", reply=replies.TEMP_FAILURE,
                        verdict=verdict, size=clean.size)
            raise  # the edge answers 451 4.3.0 and logs the traceback
        log_message(peer, envelope, stage="data", action=verdict.action.name.lower(), reply=reply,
                    verdict=verdict, size=clean.size, queue_id=queue_id, extra={"hops": hops})
        return reply

    async def _deliver(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage, verdict: Verdict,
                       hops: int, number: int) -> tuple[Reply, str]:
        action = verdict.action
        if action == Action.REJECT:
            reply = verdict.reply if verdict.reply and verdict.reply.is_permanent else replies.REJECTED
            return reply, ""
        if action == Action.SOFT_REJECT:
            reply = verdict.reply if verdict.reply and verdict.reply.is_temporary else replies.SOFT_REJECT
            return reply, ""
        final = self._finish(peer, envelope, message, verdict, number)
        if action == Action.QUARANTINE:
            if self.quarantine is None:
                # Holding is impossible; delivering would defeat the hold. 451: the sender retries
                # while the administrator adds a quarantine (or changes the thresholds).
                log.error("quarantine verdict but no quarantine configured session=%s", peer.session_id)
                return replies.SOFT_REJECT, ""
            qid = await self.quarantine.put(envelope, final, verdict, client=peer.ip)
            return replies.quarantined(qid), qid
        # JUNK travels as the verdict's folder (core.verdict.Folder), the one form of that decision.
        queue_id = await self.spool.commit(envelope, final, client=peer.ip, verdict=verdict, hops=hops)
        return replies.queued(queue_id), queue_id  # only now: the spool has it on disk

    def _finish(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage, verdict: Verdict,
                number: int) -> bytes:
        top: list[tuple[str, str]] = [
            ("Received", received_header(peer, envelope, by=self.hostname, esmtp=True,
                                         trace_id=f"{peer.session_id}.{number}")),
        ]
        if verdict.action >= Action.ADD_HEADER:
            required = self.pipeline.scorer.table.thresholds.add_header
            tests = ",".join(s.name for s in verdict.symbols)
            top.append((hdr.SPAM_SCORE, f"{verdict.score:.2f}"))
            top.append((hdr.SPAM_STATUS, f"Yes, score={verdict.score:.2f} required={required or 0:.2f} tests={tests}"))
        return apply_edits(message.header, verdict.edits, prepend=top)
