"""Releasing and deleting quarantined mail: audited, and malware only with force.

    release = QuarantineRelease(store, spool, audit)          # spool: a SpoolWriter (the real Spool)
    queue_id = await release.release(qid, actor="admin@example.org", reason="false positive")
    await release.delete(qid, actor="admin@example.org", reason="phishing")

Every release and delete is recorded in the audit log *before* it happens (an action that cannot be
audited is not done), with the verdict that held the message. Releasing a message an engine called
malware raises ReleaseRefused unless `force=True`. A released message re-enters through the spool
(`SpoolWriter.commit`) to its original recipients, or to `recipients` when given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.ports import SpoolWriter
from mailbastion.quarantine.store import QuarantineStore

log = logging.getLogger("mailbastion.quarantine")

__all__ = ["AuditSink", "QuarantineRelease", "ReleaseRefused", "open_audit_log"]


class ReleaseRefused(Exception):
    """Releasing this message needs `force` (it was called malware)."""


class AuditSink(Protocol):
    def record(self, action: str, *, actor: str, subject: str, reason: str = "",
               details: Any = None) -> int: ...


def open_audit_log(engine_or_url: Any) -> AuditSink:
    """The audit log (`mailbastion.audit`, its own database), imported lazily so the gateway imports stay small."""
    from mailbastion.audit import AuditLog

    return AuditLog(engine_or_url)


class QuarantineRelease:
    def __init__(self, store: QuarantineStore, spool: SpoolWriter | None, audit: AuditSink) -> None:
        self.store = store
        self.spool = spool
        self.audit = audit

    async def release(self, qid: str, *, actor: str, reason: str = "", force: bool = False,
                      recipients: Sequence[Address] | None = None) -> str:
        """Re-inject into the spool; return the queue id. Raises ReleaseRefused, UnknownQuarantineId."""
        if self.spool is None:
            raise RuntimeError("no spool to release into")
        entry = self.store.get(qid)
        if entry.is_malware and not force:
            raise ReleaseRefused(f"{qid} was held as malware ({', '.join(entry.reasons[:3])}): use --force")
        envelope = entry.envelope()
        if recipients:
            envelope = Envelope(envelope.sender, tuple(recipients))
        message = self.store.message(qid)
        self.audit.record(
            "quarantine.release", actor=actor, subject=f"quarantine:{qid}", reason=reason,
            details={"forced": force, "is_malware": entry.is_malware, "sender": entry.sender,
                     "recipients": [str(r) for r in envelope.recipients], "sha256": entry.sha256,
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
