"""The daily quarantine digest: to each active account that has had mail held since the last digest, one
plain-text message listing it, with links into the portal, committed through our spool like any message.

    sent = await send_digests(ctx)            # [(address, queue id)]; `portal digest` and the daily task

Only active accounts of ours get one (an alias's held mail is listed for nobody: the digest does not expand
aliases). The time of the last digest is kept in `state/portal-digest.json` below data_dir and written after
every digest is committed, so a crash half-way repeats the digest rather than losing it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.durable import write_durably
from mailbastion.portal.message_view import decoded_header

if TYPE_CHECKING:
    from mailbastion.portal.context import PortalContext
    from mailbastion.quarantine.index import IndexedEntry

__all__ = ["digest_message", "next_run", "send_digests"]

log = logging.getLogger("mailbastion.portal")
MAX_LISTED = 100


def _one_line(text: str, limit: int = 100) -> str:
    text = " ".join(decoded_header(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def digest_message(address: str, entries: list[IndexedEntry], *, portal_url: str, sender: str,
                   now: dt.datetime) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Mail quarantine <{sender}>"
    msg["To"] = address
    msg["Subject"] = f"{len(entries)} message(s) held for you"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies to this
    lines = [f"These messages to {address} were held by the mail filter since the last digest.",
             "Release what you were expecting from the portal; what an engine called malware only an",
             "administrator can release. Held mail is deleted after the retention period.", ""]
    for e in entries[:MAX_LISTED]:
        flag = " [MALWARE]" if e.is_malware else ""
        lines += [f"- {e.received_at}  from {_one_line(e.sender, 80)}{flag}",
                  f"  {_one_line(e.subject) or '(no subject)'}",
                  f"  {portal_url}/my/quarantine/{e.id}", ""]
    if len(entries) > MAX_LISTED:
        lines.append(f"... and {len(entries) - MAX_LISTED} more.")
    lines += [f"All your held mail: {portal_url}/my/quarantine", ""]
    msg.set_content("\n".join(lines), charset="utf-8")
    return msg.as_bytes()


def _state_path(ctx: PortalContext) -> object:
    return ctx.settings.path("state/portal-digest.json")


async def send_digests(ctx: PortalContext, *, now: dt.datetime | None = None) -> list[tuple[str, str]]:
    now = now or dt.datetime.now(dt.UTC)
    path = ctx.settings.path("state/portal-digest.json")
    try:
        last = str(json.loads(path.read_text())["last"])
    except (OSError, ValueError, KeyError, TypeError):
        last = (now - dt.timedelta(days=1)).isoformat(timespec="seconds")
    await asyncio.to_thread(ctx.qindex.sync)
    held = await asyncio.to_thread(ctx.qindex.recipients_since, last)
    sent: list[tuple[str, str]] = []
    for address, entries in sorted(held.items()):
        if not await asyncio.to_thread(ctx.directory.is_active, address):
            continue
        domain = address.rpartition("@")[2]
        sender = f"postmaster@{domain}"
        raw = digest_message(address, entries, portal_url=ctx.public_url, sender=sender, now=now)
        envelope = Envelope(parse_address(sender), (parse_address(address),))
        queue_id = await ctx.spool.commit(envelope, raw, client="portal-digest")
        sent.append((address, queue_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_durably(tmp, json.dumps({"last": now.isoformat(timespec="seconds")}).encode())
    tmp.replace(path)
    log.info("portal.digest sent=%d since=%s", len(sent), last)
    return sent


def next_run(at: str, now: dt.datetime) -> dt.datetime:
    """The next `HH:MM` UTC after `now`."""
    hour, minute = (int(x) for x in at.split(":"))
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + dt.timedelta(days=1)
