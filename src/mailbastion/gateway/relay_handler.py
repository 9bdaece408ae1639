"""The gateway's relay listener: outbound mail from the internal host, checked, queued for the Internet.

Who may relay: only a client whose certificate our private CA verified in the TLS handshake (the listener
requires one: TLS from the first byte, CERT_REQUIRED against `tls.ca`) and whose name is one of
`[relay_in] client_names` (the internal role, "internal"). Anyone else is refused at connect, whatever
address they come from: the gateway never sees a user's password, it trusts the internal host's
certificate. Such a client may send to any domain (that is the relay); it authenticated its users.

Outbound checks (the outbound pipeline, apps/features.py `build_outbound_pipeline`): the same anti-virus
engines as inbound and the spam filter's content checks with their scores; none of the inbound sender
checks (SPF, DKIM, DMARC, DNS blocklists, greylisting), which judge other people's servers. At DATA:

    malware (an AV engine's finding)      554 5.7.1 Not sent: malware detected (<name>)      + outbound.alarm
    other anti-virus policy refusal       554 with the policy's reason                        + outbound.alarm
    an engine down, signatures stale      451 4.7.0 Not sent yet: could not be scanned ...
    GTUBE, or a score at `refuse_action`  554 5.7.1 Not sent: the message looks like spam ... + outbound.alarm
    anything else                         our Received field on top, committed to the spool: 250 queued as <id>

No spam header is added to outgoing mail (a score under the limit is only logged). `outbound.alarm` is
one WARNING line per refused message on the `mailbastion.outbound` logger, `key=value` like the message
log line, so that log-based metrics and alerting can count it (the gateway has no audit database).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import MailError
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.ports import SpoolWriter
from mailbastion.core.replies import Reply
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, Verdict
from mailbastion.gateway.logline import format_kv, log_message
from mailbastion.gateway.received import count_received, received_header
from mailbastion.gateway.rewrite import apply_edits, without_internal
from mailbastion.policy.check import CheckContext
from mailbastion.policy.pipeline import Pipeline
from mailbastion.smtp.handler import BaseHandler

__all__ = ["RelayHandler", "outbound_refusal"]

log = logging.getLogger("mailbastion.smtp")
alarm_log = logging.getLogger("mailbastion.outbound")

CERTIFICATE_REFUSED = Reply(554, "5.7.1", "Relaying denied: this listener takes mail only from the internal "
                            "host's certificate")
NO_DOMAIN = Reply(550, "5.1.3", "Recipient address needs a domain")
NOT_SCANNED = Reply(451, "4.7.0", "Not sent yet: the message could not be scanned for malware; try again later")


def _detail(verdict: Verdict, prefix: str, suffix: str = "") -> str:
    found = [s.detail or s.name for s in verdict.symbols if s.name.startswith(prefix) and s.name.endswith(suffix)]
    return ", ".join(dict.fromkeys(d[:120] for d in found))


def outbound_refusal(verdict: Verdict, refuse_at: Action, refuse_score: float | None) -> tuple[Reply, str] | None:
    """The reply for an outbound message that must not leave, and the alarm's reason (None: no alarm),
    or None when it may be sent."""
    forced = verdict.forced
    if verdict.action == Action.SOFT_REJECT:
        if forced is not None and forced.reply == replies.SCAN_UNAVAILABLE:
            return NOT_SCANNED, ""
        text = forced.reply.text if forced is not None and forced.reply.is_temporary else "try again later"
        status = forced.reply.status if forced is not None and forced.reply.is_temporary else "4.7.1"
        return Reply(451, status or "4.7.1", f"Not sent yet: {text}"), ""
    if forced is not None and forced.action >= Action.QUARANTINE and forced.by == "antivirus":
        virus = _detail(verdict, "AV_", "_VIRUS")
        if virus:
            return Reply(554, "5.7.1", f"Not sent: malware detected ({virus}); the message went to nobody"), "malware"
        reason = forced.reply.text.removeprefix("Message rejected: ") if forced.reply.is_permanent else \
            (_detail(verdict, "AV_") or "held by the anti-virus policy")
        return Reply(554, "5.7.1", f"Not sent: {reason}; the message went to nobody"), "antivirus-policy"
    if forced is not None and forced.by == "gtube":
        return Reply(554, "5.7.1", "Not sent: the message looks like spam (GTUBE test string)"), "spam"
    if verdict.action >= refuse_at:
        limit = f", limit {refuse_score:.1f}" if refuse_score is not None else ""
        by = f" by {forced.by}" if forced is not None else ""
        return Reply(554, "5.7.1", f"Not sent: the message looks like spam (score {verdict.score:.1f}{limit}"
                     f"{by})"), "spam"
    return None


@dataclass(eq=False)
class _Session:
    name: str | None = None  # the certificate name that may relay; None: refused
    transactions: int = 0
    facts: dict[type, Any] = field(default_factory=dict)


class RelayHandler(BaseHandler):
    """StageHandler of the relay listener. One instance per process; per-connection state by session id."""

    def __init__(self, *, hostname: str, pipeline: Pipeline, spool: SpoolWriter, client_names: list[str],
                 refuse_action: str = "quarantine", max_hops: int = 50) -> None:
        self.hostname = hostname
        self.pipeline = pipeline
        self.spool = spool
        self.client_names = frozenset(client_names)
        self.refuse_at = Action.QUARANTINE if refuse_action == "quarantine" else Action.REJECT
        self.max_hops = max_hops
        self._sessions: dict[str, _Session] = {}

    @property
    def refuse_score(self) -> float | None:
        t = self.pipeline.scorer.table.thresholds
        return t.quarantine if self.refuse_at == Action.QUARANTINE else t.reject

    def _session(self, peer: PeerInfo) -> _Session:
        return self._sessions.setdefault(peer.session_id, _Session())

    def _allowed(self, peer: PeerInfo) -> str | None:
        tls = peer.tls
        if tls is None or not tls.client_verified or tls.peer_cert_subject not in self.client_names:
            return None
        return tls.peer_cert_subject

    # -- stages ------------------------------------------------------------------------------------------

    async def on_connect(self, peer: PeerInfo) -> Reply:
        session = self._sessions[peer.session_id] = _Session(self._allowed(peer))
        if session.name is None:
            cert = peer.tls.peer_cert_subject if peer.tls is not None and peer.tls.client_verified else None
            log.warning("relay_in.refused session=%s client=%s certificate=%s (allowed: %s)", peer.session_id,
                        peer.ip, cert or "none", ",".join(sorted(self.client_names)))
            return CERTIFICATE_REFUSED
        return replies.OK

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        return replies.SENDER_OK if self._session(peer).name else CERTIFICATE_REFUSED

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        if not self._session(peer).name:
            return CERTIFICATE_REFUSED
        if rcpt.is_bare_postmaster:
            return NO_DOMAIN
        return replies.RECIPIENT_OK  # any domain: the internal host authenticated its user

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self._sessions.pop(peer.session_id, None)

    async def on_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Reply:
        session = self._session(peer)
        if not session.name:
            return CERTIFICATE_REFUSED
        session.transactions += 1
        block, stripped = without_internal(message.header)
        clean = SpooledMessage(block.to_bytes()) if stripped else message
        hops = count_received(clean.header)
        if hops >= self.max_hops:
            log_message(peer, envelope, stage="relay", action="reject", reply=replies.LOOP_DETECTED, size=clean.size)
            return replies.LOOP_DETECTED
        # The checks see a client that may relay (spam rules judge it as mail from inside).
        inside = peer.evolve(is_relay_network=True)
        ctx = CheckContext(Stage.DATA, inside, envelope, message=clean, facts=dict(session.facts))
        outcome = await self.pipeline.run_stage(ctx)
        verdict = self.pipeline.decide(list(outcome.symbols), outcome.forced)
        refusal = outbound_refusal(verdict, self.refuse_at, self.refuse_score)
        if refusal is not None:
            reply, reason = refusal
            action = "soft_reject" if reply.is_temporary else "reject"
            if reason:
                self._alarm(peer, envelope, verdict, reason, reply, session.name)
            log_message(peer, envelope, stage="relay", action=action, reply=reply, verdict=verdict, size=clean.size)
            return reply
        final = apply_edits(clean.header, (), prepend=[
            ("Received", received_header(peer, envelope, by=self.hostname, esmtp=True,
                                         trace_id=f"{peer.session_id}.{session.transactions}"))])
        queue_id = ""
        try:
            queue_id = await self.spool.commit(envelope, final, client=peer.ip, verdict=verdict, hops=hops)
            reply = replies.queued(queue_id)  # only now: the spool has it on disk
        except MailError as exc:
            reply = exc.reply
            log.warning("store failed session=%s: %s: %s", peer.session_id, type(exc).__name__, exc)
        log_message(peer, envelope, stage="relay", action="relay", reply=reply, verdict=verdict, size=clean.size,
                    queue_id=queue_id, extra={"hops": hops, "relay_for": session.name})
        return reply

    @staticmethod
    def _alarm(peer: PeerInfo, envelope: Envelope, verdict: Verdict, reason: str, reply: Reply, name: str) -> None:
        alarm_log.warning("outbound.alarm " + format_kv({
            "reason": reason,
            "sender": envelope.sender_text or "<>",
            "recipients": ",".join(str(r) for r in envelope.recipients) or "-",
            "client": peer.ip,
            "certificate": name,
            "score": f"{verdict.score:.2f}",
            "forced_by": verdict.forced.by if verdict.forced else None,
            "reply": f"{reply.code} {reply.status}",
            "symbols": ",".join(str(s) for s in verdict.symbols) or "-",
        }))
