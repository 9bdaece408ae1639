"""Delivery status notifications (RFC 3464): the bounce a sender gets when we give up on recipients.

    multipart/report; report-type=delivery-status
    ├─ text/plain                  what happened, for a human
    ├─ message/delivery-status     per-message fields, then one block per failed recipient
    └─ text/rfc822-headers         the original message's headers (never its body: no backscatter
                                   of a payload, and no resending of malware we refused to deliver)

Rules that keep bounces from making loops or spam (RFC 5321 §6.1, §4.5.5; RFC 3464 §2):
  - never to the null sender: `build_dsn` returns None for a message from `<>`;
  - the DSN itself has the null sender, so a DSN about a DSN is never made;
  - it carries `Auto-Submitted: auto-replied` (RFC 3834) and re-enters through the Spool like any mail.
"""

from __future__ import annotations

import email.utils
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.delivery.agent import enhanced_status
from mailbastion.spool.record import QueueRecord, RecipientStatus

MAX_HEADER_BYTES = 64 * 1024  # an absurd header block is cut, the DSN stays small


@dataclass(frozen=True, slots=True)
class Dsn:
    envelope: Envelope  # null sender, to the original sender
    message: bytes


def _header_block(message: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = message.find(sep)
        if idx >= 0:
            return message[:idx]
    return message


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _date(ts: float) -> str:
    return email.utils.formatdate(ts, localtime=False)


def _clean(text: str) -> str:
    # A diagnostic is one header field: no line breaks may sneak in from a remote reply.
    return " ".join(text.split())


def _recipient_block(r: RecipientStatus, now: float) -> str:
    status = enhanced_status(r.last_error, default="5.0.0")
    if status.startswith("2"):
        status = "5.0.0"
    lines = [
        f"Final-Recipient: rfc822; {r.address}",
        "Action: failed",
        f"Status: {status}",
    ]
    if r.last_error:
        kind = "smtp" if r.last_error[:3].isdigit() else "x-local"
        lines.append(f"Diagnostic-Code: {kind}; {_clean(r.last_error)}")
    lines.append(f"Last-Attempt-Date: {_date(r.updated or now)}")
    return "\n".join(lines)


def build_dsn(
    record: QueueRecord,
    message: bytes,
    failed: Sequence[RecipientStatus],
    *,
    reporting_mta: str,
    now: float,
) -> Dsn | None:
    """A failure DSN for `failed` recipients of `record`, addressed to its sender.

    Returns None when there is nobody to tell: a null sender, or no failed recipient."""
    if record.is_null_sender or not failed:
        return None
    sender = parse_address(record.sender, allow_utf8=True)
    boundary = f"=_mailbastion_{secrets.token_hex(12)}"
    names = "\n".join(f"  <{r.address}>: {_clean(r.last_error) or 'delivery failed'}" for r in failed)
    human = (
        f"This is the mail system at host {reporting_mta}.\n\n"
        "Your message could not be delivered to one or more recipients. It has been given up;\n"
        "the details are below, and the headers of your message are attached.\n\n"
        f"{names}\n"
    )
    per_message = "\n".join([
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Mailbastion-Queue-ID: {record.queue_id}",
        f"Arrival-Date: {_date(record.arrival)}",
    ])
    status_body = per_message + "\n\n" + "\n\n".join(_recipient_block(r, now) for r in failed) + "\n"
    headers = _header_block(message)[:MAX_HEADER_BYTES].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head = "\n".join([
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{record.sender}>",
        "Subject: Undelivered Mail Returned to Sender",
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
        "Content-Type: message/delivery-status",
        "Content-Description: Delivery report",
        "",
        status_body,
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "Content-Description: Undelivered Message Headers",
        "",
        "",
    ])
    body = _crlf(head) + headers + _crlf(f"\n\n--{boundary}--\n")
    return Dsn(envelope=Envelope(sender=None, recipients=(sender,)), message=body)
