"""The outbound encryption policy (crypto/outbound.py `protect_outbound`) on the submission path.

    protection = Protection(policy, keys, hold=outbox_spool)
    plan = await protection.plan(raw, envelope)
    plan.refusal            # a Reply: send nothing (a recipient the policy refuses)
    plan.sends              # [(envelope for those recipients, bytes)]: each signed and handed over apart
    await protection.keep_held(plan, raw, envelope, client=...)   # the original, in the outbox's hold/

With a `discovery` (crypto/discovery.py), a confidential message's outside recipients without a key are
looked up first (WKD, then LDAP), so a key published by the recipient's domain is used at once.

Run after sender binding and the Date/Message-ID completion, before DKIM (DKIM signs what leaves: the
encrypted message). For a message that is not confidential the plan is the message itself (S/MIME-signed
when `encryption.sign = "always"`). For a confidential one (crypto/outbound.py): our own domains get it as it
is, outside recipients with a key in the store get it encrypted, the others by `encryption.without_key`:

    refuse   the whole message is refused at DATA (550 5.7.1 naming them): nothing leaves, the user
             resends without them (an SMTP reply after DATA cannot refuse some recipients only)
    pickup   the recipient gets the notice with the link (no content); the sender gets the code
    hold     the original is kept for them in hold/ of the outbox spool (never relayed by its queue
             manager), the sender gets a notice naming them

Every part of a confidential message carries REQUIRETLS-like `require_tls` on its envelope: the gateway's
SMTP client then delivers it only over verified TLS, or fails it (5.7.10), never in clear.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.replies import Reply
from mailbastion.crypto.outbound import Decision, KeyLookup, OutboundPolicy, protect_outbound
from mailbastion.spool.layout import QueueState
from mailbastion.spool.record import QueueRecord
from mailbastion.spool.writer import Spool

__all__ = ["Plan", "Protection"]

log = logging.getLogger("mailbastion.submission")


@dataclass(frozen=True, slots=True)
class Plan:
    decision: Decision | None
    sends: tuple[tuple[Envelope, bytes], ...] = ()
    refusal: Reply | None = None
    held: tuple[Address, ...] = ()
    notice: bytes | None = None


def _only(envelope: Envelope, keep: tuple[Address, ...], *, requiretls: bool) -> Envelope:
    wanted = {a.normalized for a in keep}
    pairs = [(r, envelope.dsn_of(i)) for i, r in enumerate(envelope.recipients) if r.normalized in wanted]
    return replace(envelope, recipients=tuple(r for r, _ in pairs), rcpt_dsn=tuple(d for _, d in pairs),
                   requiretls=envelope.requiretls or requiretls)


class KeyFinder(Protocol):
    """crypto/discovery.py `KeyDiscovery`: finds outsiders' OpenPGP keys (WKD, LDAP) into the key store."""

    async def find_all(self, addresses: list[str]) -> dict[str, Any]: ...


class Protection:
    def __init__(self, policy: OutboundPolicy, keys: KeyLookup, *, hold: Spool | None = None,
                 discovery: KeyFinder | None = None) -> None:
        self.policy = policy
        self.keys = keys
        self.hold = hold
        self.discovery = discovery

    async def plan(self, raw: bytes, envelope: Envelope) -> Plan:
        """What to send. Raises OSError when the pick-up store fails (the caller answers 451)."""
        classification = await asyncio.to_thread(self.policy.classifier.is_confidential, raw, envelope)
        if classification and self.discovery is not None:
            await self._discover(envelope)
        decision = await asyncio.to_thread(protect_outbound, raw, envelope.recipients, self.keys, self.policy,
                                           sender=envelope.sender, envelope=envelope, classification=classification)
        if decision.refused:
            names = ", ".join(str(r.recipient) for r in decision.refused)
            return Plan(decision, refusal=Reply(550, "5.7.1", "Confidential message not sent: no encryption key or "
                                                "certificate for " + names[:300] + "; the policy forbids sending it "
                                                "in clear. Send it again without them"))
        sends = tuple((_only(envelope, o.recipients, requiretls=o.require_tls), o.message) for o in decision.outgoing)
        return Plan(decision, sends, None, decision.held, decision.notice)

    async def _discover(self, envelope: Envelope) -> None:
        """Before the policy runs on a confidential message (`plan` asks only for those: ordinary mail asks
        nothing, so no lookup leaks who our users write to): look up (WKD, then LDAP) the OpenPGP keys of
        outside recipients the store has no key for; what is found is stored and used at once. A failed lookup
        is a miss, never an error."""
        def missing() -> list[str]:
            return [r.normalized for r in envelope.recipients
                    if r.domain and not self.policy.is_local_domain(r.domain)
                    and self.keys.encryption_key(r.normalized, prefer=self.policy.prefer) is None]

        wanted = await asyncio.to_thread(missing)
        if wanted and self.discovery is not None:
            await self.discovery.find_all(wanted)

    async def keep_held(self, plan: Plan, raw: bytes, envelope: Envelope, *, client: str) -> str | None:
        """The original for the held recipients, fsynced into hold/ of the outbox spool; its queue id."""
        if not plan.held or self.hold is None:
            return None
        held = _only(envelope, plan.held, requiretls=True)
        return await asyncio.to_thread(_write_held, self.hold, held, raw, client)


def _write_held(spool: Spool, envelope: Envelope, raw: bytes, client: str) -> str:
    from mailbastion.spool.layout import new_queue_id

    layout = spool.layout
    queue_id = new_queue_id()
    record = QueueRecord.new(queue_id, envelope, arrival=time.time(), client=client, size=len(raw))
    # Straight into hold/ (never through incoming/, where the queue manager would relay it in clear).
    work = layout._write_tmp(queue_id, record, raw)  # data fsynced by the layout (it has no "create in hold/")
    os.rename(work, layout.path(QueueState.HOLD, queue_id))
    fd = os.open(layout.state_dir(QueueState.HOLD), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("submission.held id=%s recipients=%s (confidential, no key)", queue_id,
             ",".join(str(r) for r in envelope.recipients))
    return queue_id
