"""Releasing a confidential message kept in the outbox's hold/ (submission/protection.py) once keys exist.

    result = await release_held(layout, spool, protection, signer, queue_id)
    result.sent        # queue ids of the parts committed to the outbox's incoming/ (relayed by the server)
    result.still_held  # recipients still without a key: the entry stays in hold/, nothing is sent

The original is never relayed as it is: the policy runs again on it (`protect_outbound`), exactly as at
submission; every part is DKIM-signed and committed (fsynced) to the outbox's incoming/, where the running
server's queue manager picks it up at its next scan; only then is the held entry removed. A recipient that
still has no key keeps the whole entry held (nothing leaves); a policy refusal leaves it held too.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope, RecipientDsn
from mailbastion.core.ports import SpoolWriter
from mailbastion.spool.layout import QueueState, SpoolLayout
from mailbastion.spool.record import QueueRecord
from mailbastion.submission.dkim_signer import DkimSigner
from mailbastion.submission.protection import Protection

__all__ = ["Released", "envelope_of", "release_held"]


@dataclass(frozen=True, slots=True)
class Released:
    queue_id: str
    sent: tuple[str, ...] = ()
    still_held: tuple[str, ...] = ()
    refusal: str = ""


def envelope_of(record: QueueRecord) -> Envelope:
    return Envelope(parse_address(record.sender, allow_utf8=True) if record.sender else None,
                    tuple(parse_address(r.address, allow_utf8=True) for r in record.recipients),
                    smtputf8=record.smtputf8, body_8bitmime=record.body_8bitmime, dsn_ret=record.dsn_ret,
                    dsn_envid=record.dsn_envid, requiretls=record.requiretls,
                    rcpt_dsn=tuple(RecipientDsn(r.notify, r.orcpt) for r in record.recipients))


async def release_held(layout: SpoolLayout, spool: SpoolWriter, protection: Protection, signer: DkimSigner | None,
                       queue_id: str) -> Released:
    """Raises FileNotFoundError when `queue_id` is not held; MailError when the outbox cannot take a part."""
    record, message = layout.read(QueueState.HOLD, queue_id)
    envelope = envelope_of(record)
    plan = await protection.plan(message, envelope)
    if plan.refusal is not None:
        return Released(queue_id, refusal=plan.refusal.text)
    if plan.held:
        return Released(queue_id, still_held=tuple(str(a) for a in plan.held))
    sent = []
    for part, body in plan.sends:
        signed = (await signer.sign_async(body) + body) if signer is not None else body
        sent.append(await spool.commit(part, signed, client="release"))
    layout.remove(queue_id, QueueState.HOLD)
    return Released(queue_id, tuple(sent))
