"""Delivery status notifications (RFC 3464, RFC 3461): what a sender hears about its recipients.

    multipart/report; report-type=delivery-status
    ├─ text/plain                  what happened, for a human
    ├─ message/delivery-status     per-message fields, then one block per reported recipient
    └─ text/rfc822-headers         the original message's headers; the whole message (message/rfc822)
                                   only for a failure when the sender asked RET=FULL (RFC 3461 §4.3),
                                   and only up to MAX_RETURNED_BYTES (Postfix's bounce_size_limit)

Each reported recipient gets the Action its queue status says: failed, delayed, delivered (final
delivery into a mailbox by our MDA) or relayed (handed to a hop that does not offer DSN). Status,
Remote-MTA and Diagnostic-Code come from the reply fields kept in the queue record, never from text.
ENVID (Original-Envelope-Id) and ORCPT (Original-Recipient) are echoed as the sender gave them. A message
that came in with SMTPUTF8 gets the RFC 6533 types (message/global-delivery-status, message/global...).

Rules that keep reports from making loops or spam (RFC 5321 §6.1, §4.5.5; RFC 3464 §2):
  - never to the null sender: `build_dsn` returns None for a message from `<>`;
  - the DSN itself has the null sender, so a DSN about a DSN is never made;
  - it carries `Auto-Submitted: auto-replied` (RFC 3834) and re-enters through the Spool like any mail.
Which recipients to report (NOTIFY) is the queue manager's decision; this module only writes the report.
"""

from __future__ import annotations

import email.utils
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.outcome import Handoff, describe
from mailbastion.spool.record import QueueRecord, RecipientState, RecipientStatus

MAX_HEADER_BYTES = 64 * 1024  # an absurd header block is cut, the DSN stays small
MAX_RETURNED_BYTES = 50_000  # RET=FULL returns the whole message only up to this size

_HUMAN = {
    "failed": "could not be delivered to the recipient(s) below. It has been given up.",
    "delayed": "has not been delivered yet to the recipient(s) below. Delivery is still being tried;\n"
               "you do not need to send it again.",
    "delivered": "was delivered to the mailbox of the recipient(s) below.",
    "relayed": "was passed on to the recipient(s) below by a mail system that does not report delivery;\n"
               "no further notification may follow.",
}
_SUBJECT = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report",
}


@dataclass(frozen=True, slots=True)
class Dsn:
    envelope: Envelope  # null sender, to the original sender
    message: bytes


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _date(ts: float) -> str:
    return email.utils.formatdate(ts, localtime=False)


def _clean(text: str) -> str:
    # A field value is one line: no line breaks may sneak in from a remote reply or a sender's ENVID.
    return " ".join(text.split())


def action_of(r: RecipientStatus) -> str:
    """The RFC 3464 Action of a recipient's queue status."""
    if r.status is RecipientState.FAILED:
        return "failed"
    if r.status is RecipientState.DELIVERED:
        return "delivered" if r.handoff in (Handoff.DELIVERED, None) else "relayed"
    return "delayed"


def status_of(r: RecipientStatus, action: str) -> str:
    """The RFC 3463 status for the report: the reply's own when it fits the action, else a default."""
    if action == "failed" and r.expired:
        return "4.4.7"  # RFC 3463: delivery time expired
    wanted = {"failed": ("5", "4"), "delayed": ("4",)}.get(action, ("2",))
    status = r.reply.status if r.reply is not None else ""
    if status[:1] in wanted:
        return status
    return {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "2.0.0")


def _address_field(address: str, *, utf8: bool) -> str:
    kind = "utf-8" if utf8 and not address.isascii() else "rfc822"
    return f"{kind}; {address}"


def _recipient_block(r: RecipientStatus, now: float, *, utf8: bool) -> tuple[str, str]:
    action = action_of(r)
    lines = []
    if r.orcpt:
        kind, _, value = r.orcpt.partition(";")
        lines.append(f"Original-Recipient: {_clean(kind)}; {_clean(value)}")
    lines += [f"Final-Recipient: {_address_field(r.address, utf8=utf8)}", f"Action: {action}",
              f"Status: {status_of(r, action)}"]
    if r.remote:
        lines.append(f"Remote-MTA: dns; {_clean(r.remote)}")
    if r.reply is not None:
        kind = "smtp" if r.remote else "X-mailbastion"  # a reply from the wire, or one we made
        lines.append(f"Diagnostic-Code: {kind}; {describe(r.reply)}")
    if r.updated is not None or r.attempts:
        lines.append(f"Last-Attempt-Date: {_date(r.updated or now)}")
    return action, "\n".join(lines)


def build_dsn(
    record: QueueRecord,
    message: bytes,
    report: Sequence[RecipientStatus],
    *,
    now: float,
    reporting_mta: str,
) -> Dsn | None:
    """A DSN about the `report` recipients of `record`, addressed to its sender.

    Returns None when there is nobody to tell: a null sender, or nothing to report."""
    if record.is_null_sender or not report:
        return None
    utf8 = record.smtputf8
    sender = parse_address(record.sender, allow_utf8=True)
    blocks = [_recipient_block(r, now, utf8=utf8) for r in report]
    actions = [a for a, _ in blocks]
    lead = next(a for a in ("failed", "delayed", "delivered", "relayed") if a in actions)
    boundary = f"=_mailbastion_{secrets.token_hex(12)}"
    human = f"This is the mail system at host {reporting_mta}.\n\n"
    for action in ("failed", "delayed", "delivered", "relayed"):
        names = [r for r, (a, _) in zip(report, blocks, strict=True) if a == action]
        if names:
            listed = "\n".join(f"  <{r.address}>: {r.reply_line or action}" for r in names)
            human += f"Your message {_HUMAN[action]}\n\n{listed}\n\n"
    per_message = [f"Reporting-MTA: dns; {reporting_mta}"]
    if record.dsn_envid:
        per_message.append(f"Original-Envelope-Id: {_clean(record.dsn_envid)}")
    per_message += [f"X-Mailbastion-Queue-ID: {record.queue_id}", f"Arrival-Date: {_date(record.arrival)}"]
    status_body = "\n".join(per_message) + "\n\n" + "\n\n".join(b for _, b in blocks) + "\n"

    # RFC 3461 §4.3: RET applies to failure reports; a success or delay report returns headers only.
    full = "failed" in actions and record.dsn_ret == "FULL" and len(message) <= MAX_RETURNED_BYTES
    if full:
        returned = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        returned_type, returned_name = ("message/global" if utf8 else "message/rfc822"), "Undelivered Message"
    else:
        headers = HeaderBlock.parse(message).header_bytes[:MAX_HEADER_BYTES]
        returned = headers.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        returned_type = "message/global-headers" if utf8 else "text/rfc822-headers"
        returned_name = "Message Headers"
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    head = "\n".join([
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{record.sender}>",
        f"Subject: {_SUBJECT[lead]}",
        f"Date: {_date(now)}",
        f"Message-ID: {email.utils.make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Description: Notification",
        "",
        human,
        f"--{boundary}",
        f"Content-Type: {status_type}",
        "Content-Description: Delivery report",
        "",
        status_body,
        f"--{boundary}",
        f"Content-Type: {returned_type}",
        f"Content-Description: {returned_name}",
        "",
        "",
    ])
    body = _crlf(head) + returned + _crlf(f"\n\n--{boundary}--\n")
    envelope = Envelope(sender=None, recipients=(sender,), smtputf8=utf8, body_8bitmime=utf8 or record.body_8bitmime)
    return Dsn(envelope=envelope, message=body)
