"""Releasing and deleting quarantined mail: audited, and malware only with force.

    release = QuarantineRelease(store, spool, audit)          # spool: a SpoolWriter (the real Spool)
    queue_id = await release.release(qid, actor="admin@example.org", reason="false positive")
    await release.delete(qid, actor="admin@example.org", reason="phishing")

Every release and delete is recorded in the audit log *before* it happens (an action that cannot be
audited is not done), with the verdict that held the message. Releasing a message an engine called
malware raises ReleaseRefused unless `force=True`. A released message re-enters through the spool
(`SpoolWriter.commit`) to its original recipients, or to `recipients` when given.

A released message must never go back to its sender, who may be the phisher it was held for. Given the
directory's view (`directory`, a RecipientResolver: the gateway's recipient map), release therefore
- refuses (ReleaseRefused) when a recipient of ours cannot receive: an inactive or unknown account, or an
  alias left with no active target. The MDA would refuse it and the refusal would bounce to the sender.
  The administrator releases to someone else instead (`recipients`, `--to` on the command line);
- sends the released copy with the postmaster of its first recipient's domain as envelope sender when the
  original sender is not one of ours, so that any later failure (a mailbox full for days, an account
  closed before delivery) notifies the postmaster, not the outside sender. The null sender is used
  when no such postmaster exists: no notice at all rather than one outward. The original sender stays
  in the message's own header fields, the quarantine record and the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.ports import RecipientResolver, ResolutionKind, SpoolWriter
from mailbastion.quarantine.store import QuarantineStore

log = logging.getLogger("mailbastion.quarantine")

__all__ = ["AuditSink", "QuarantineRelease", "ReleaseRefused", "open_audit_log", "released_envelope"]


class ReleaseRefused(Exception):
    """Releasing this message needs `force` (it was called malware), or a recipient cannot receive it."""


class AuditSink(Protocol):
    def record(self, action: str, *, actor: str, subject: str, reason: str = "",
               details: Any = None) -> int: ...


def open_audit_log(engine_or_url: Any) -> AuditSink:
    """The audit log (`mailbastion.audit`, its own database), imported lazily so the gateway imports stay small."""
    from mailbastion.audit import AuditLog

    return AuditLog(engine_or_url)


def released_envelope(envelope: Envelope, directory: RecipientResolver) -> Envelope:
    """The envelope a released copy travels with (see the module docstring). Raises ReleaseRefused naming
    every recipient of ours that cannot receive; recipients outside our domains are kept."""
    refused = [r for r in envelope.recipients if directory.resolve(r).kind is ResolutionKind.UNKNOWN_USER]
    if refused:
        names = ", ".join(str(r) for r in refused)
        postmaster = f"postmaster@{refused[0].domain}"
        raise ReleaseRefused(f"{names}: no active account or alias target, so the release would bounce to the "
                             f"sender; release to someone else with --to ADDRESS (e.g. --to {postmaster})")
    sender = envelope.sender
    if sender is None or directory.is_local_domain(sender.domain):
        return envelope  # a failure notice then stays inside
    notify: Address | None = None
    for rcpt in envelope.recipients:
        candidate = Address("postmaster", rcpt.domain)
        if directory.resolve(candidate).kind in (ResolutionKind.LOCAL, ResolutionKind.ALIAS):
            notify = candidate
            break
    return replace(envelope, sender=notify)


class QuarantineRelease:
    """Release and delete, audited. With `directory`, release never sends a message back to an outside
    sender (see the module docstring); without it, the envelope is used as held (tests, tools)."""

    def __init__(self, store: QuarantineStore, spool: SpoolWriter | None, audit: AuditSink,
                 directory: RecipientResolver | None = None) -> None:
        self.store = store
        self.spool = spool
        self.audit = audit
        self.directory = directory

    async def release(self, qid: str, *, actor: str, reason: str = "", force: bool = False,
                      recipients: Sequence[Address] | None = None) -> str:
        """Re-inject into the spool; return the queue id. Raises ReleaseRefused (malware without `force`, a
        recipient that cannot receive), UnknownQuarantineId."""
        if self.spool is None:
            raise RuntimeError("no spool to release into")
        entry = self.store.get(qid)
        if entry.is_malware and not force:
            raise ReleaseRefused(f"{qid} was held as malware ({', '.join(entry.reasons[:3])}): use --force")
        envelope = entry.envelope()
        if recipients:
            envelope = Envelope(envelope.sender, tuple(recipients))
        if self.directory is not None:
            envelope = released_envelope(envelope, self.directory)
        message = self.store.message(qid)
        self.audit.record(
            "quarantine.release", actor=actor, subject=f"quarantine:{qid}", reason=reason,
            details={"forced": force, "is_malware": entry.is_malware, "sender": entry.sender,
                     "released_as": envelope.sender_text, "recipients": [str(r) for r in envelope.recipients],
                     "sha256": entry.sha256,
                     "verdict": entry.action, "reasons": list(entry.reasons[:20])},
        )
        queue_id = await self.spool.commit(envelope, message, client=f"quarantine-release by {actor}")
        self.store.remove(qid)
        log.warning("quarantine.release id=%s queue_id=%s actor=%s forced=%s malware=%s", qid, queue_id, actor,
                    force, entry.is_malware)
        return queue_id

    async def delete(self, qid: str, *, actor: str, reason: str = "") -> None:
        entry = self.store.get(qid)
        self.audit.record(
            "quarantine.delete", actor=actor, subject=f"quarantine:{qid}", reason=reason,
            details={"sender": entry.sender, "recipients": list(entry.recipients), "sha256": entry.sha256,
                     "verdict": entry.action, "reasons": list(entry.reasons[:20])},
        )
        self.store.remove(qid)
        log.info("quarantine.delete id=%s actor=%s", qid, actor)
