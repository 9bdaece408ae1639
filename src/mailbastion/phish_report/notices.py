"""The two short mails of the loop: the acknowledgement to the reporter, and the notice to a user whose copy
was moved into the quarantine. Plain text, `Auto-Submitted: auto-generated` (RFC 3834 §5: no auto-reply to
them), sent with the null sender so that nothing ever bounces back into the report address."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

__all__ = ["acknowledgement", "affected_notice"]


def _one_line(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _frame(*, sender: str, to: str, subject: str, now: dt.datetime, lines: Sequence[str]) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Mail security <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    text = "\n".join(lines) + "\n"
    msg.set_content(text, charset="utf-8", cte="7bit" if text.isascii() else "8bit")  # readable as it is
    return msg.as_bytes()


def acknowledgement(*, reporter: str, sender: str, now: dt.datetime, subjects: Sequence[str], report_id: str,
                    learned: int, moved: int, truncated: bool, notes: Sequence[str], nothing_found: bool) -> bytes:
    listed = [f"- {_one_line(s) or '(no subject)'}" for s in subjects[:10]]
    lines = ["Thank you for reporting this message as phishing:", "", *listed, ""]
    lines += list(notes)
    if notes:
        lines.append("")
    if nothing_found:
        lines += ["No message could be found in what you sent. Forward the suspicious message as an attachment",
                  "(or use \"Report as phishing\" in the portal) so that it can be examined.", ""]
    if learned:
        lines.append("The mail filter has learned it as unwanted mail.")
    if moved:
        lines.append(f"{moved} copy/copies of it in colleagues' mailboxes were moved to the quarantine.")
        if truncated:
            lines.append("More copies matched than one report may move; the administrators can move the rest.")
    elif not nothing_found and not notes:
        lines.append("No other copy of it was found in our mailboxes.")
    lines += ["", "Do not open its links or attachments. If you already did, or typed a password after",
              "opening it, tell your IT contact now and change that password.", "", f"Report reference: {report_id}"]
    return _frame(sender=sender, to=reporter, subject="Your phishing report was received", now=now, lines=lines)


def affected_notice(*, mailbox: str, sender: str, now: dt.datetime, subject: str, from_address: str,
                    quarantine_url: str) -> bytes:
    lines = ["A message was removed from your mailbox and held in the quarantine, because a colleague",
             "reported a copy of it as phishing:", "",
             f"  From:    {_one_line(from_address, 100) or '(unknown)'}",
             f"  Subject: {_one_line(subject) or '(no subject)'}", "",
             "If you opened a link in it or typed a password after opening it, tell your IT contact now and",
             "change that password. If you are sure it was genuine, you can see it here:", f"  {quarantine_url}"]
    return _frame(sender=sender, to=mailbox, subject="A suspected phishing message was removed from your mailbox",
                  now=now, lines=lines)
