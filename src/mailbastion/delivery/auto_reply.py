"""The auto-reply for a leaver whose mail is forwarded to a successor (issue 13, `[lifecycle]`).

    replier = AutoReplier(successor_of=recipient_map.data.leavers.get, spool=spool,
                          log=ReplyLog(settings.path("auto-reply.db")), interval_days=7, hostname=...)
    await replier.answer(request, delivered_addresses)    # after the router delivered them

While `leaver_policy = "forward"` forwards a leaver's mail (an alias leaver → successor that the directory
keeps for `forward_days`), each sender is told once per `auto_reply_days` that the person has left and whom
to write to instead. RFC 3834 decides when not to answer (§2):
- never to the null reverse-path (a bounce), nor to MAILER-DAEMON, owner-*, *-request, *-bounces senders;
- never to mail that is itself automatic: Auto-Submitted other than "no", Precedence bulk/list/junk,
  a List-Id/List-Unsubscribe/List-Post (a mailing list), X-Auto-Response-Suppress All/OOF;
and how to answer (§3): From the leaver's address, to the envelope sender, null MAIL FROM (§3.3),
`Auto-Submitted: auto-replied`, In-Reply-To/References, Subject "Auto: <subject>". The reply is committed
to our spool and travels our own path. Who was answered when is in a small SQLite file (0600).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from pathlib import Path

from mailbastion.core.address import AddressError, parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.ports import DeliveryRequest, SpoolWriter
from mailbastion.private_files import create_private_file

__all__ = ["AutoReplier", "ReplyLog", "is_automatic"]

log = logging.getLogger("mailbastion.delivery.auto_reply")
_SENDER_NEVER = ("mailer-daemon", "postmaster", "listserv", "majordomo", "noreply", "no-reply")
_LIST_FIELDS = ("list-id", "list-unsubscribe", "list-post", "list-help")
# What the reply echoes of the sender's header is bounded: the SMTP policy's header parsing and folding are
# quadratic, and a crafted 200 KB Message-ID of encoded words cost seconds and gigabytes.
_MSG_ID = re.compile(r"<[^<>\s]{1,250}>")
MAX_REFERENCES = 20  # of the original's References, the last ones, before its own Message-ID
MAX_SUBJECT = 200


def is_automatic(sender: str, block: HeaderBlock) -> str | None:
    """Why a message must not be answered (RFC 3834 §2), or None when it may be."""
    if not sender:
        return "null sender"
    local = sender.rpartition("@")[0].lower()
    if local in _SENDER_NEVER or local.startswith("owner-") or local.endswith(("-request", "-bounces", "-owner")):
        return f"sender {local}@"
    auto = (block.first("auto-submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto}"
    precedence = (block.first("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    for name in _LIST_FIELDS:
        if block.first(name) is not None:
            return f"{name} (a mailing list)"
    suppress = (block.first("x-auto-response-suppress") or "").lower()
    if "all" in suppress or "oof" in suppress:
        return "X-Auto-Response-Suppress"
    return None


class ReplyLog:
    """(leaver, sender) → when the last auto-reply went. Thread-safe; one connection under a lock."""

    def __init__(self, path: Path) -> None:
        create_private_file(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replied (leaver TEXT NOT NULL, sender TEXT NOT NULL, "
                         "at REAL NOT NULL, PRIMARY KEY (leaver, sender))")
        self._lock = threading.Lock()

    def claim(self, leaver: str, sender: str, now: float, interval: float) -> bool:
        """True (and recorded) when `sender` got no reply for `leaver` within `interval` seconds."""
        with self._lock:
            row = self._db.execute("SELECT at FROM replied WHERE leaver = ? AND sender = ?",
                                   (leaver, sender)).fetchone()
            if row is not None and now - row[0] < interval:
                return False
            self._db.execute("INSERT OR REPLACE INTO replied (leaver, sender, at) VALUES (?, ?, ?)",
                             (leaver, sender, now))
            return True

    def close(self) -> None:
        with self._lock:
            self._db.close()


class AutoReplier:
    def __init__(self, *, successor_of: Callable[[str], str | None], spool: SpoolWriter, log: ReplyLog,
                 interval_days: int = 7, hostname: str = "localhost", clock: Callable[[], float] = time.time) -> None:
        self.successor_of = successor_of
        self.spool = spool
        self.log = log
        self.interval = interval_days * 86400.0
        self.hostname = hostname
        self.clock = clock

    async def answer(self, request: DeliveryRequest, delivered: Iterable[str]) -> list[str]:
        """Answer the sender for each delivered address that is a forwarded leaver; the queue ids of the
        replies. Never raises: a reply that cannot be made or stored is logged and skipped."""
        made: list[str] = []
        leavers = []
        for address in delivered:
            try:
                key = parse_address(address, allow_utf8=True).normalized
            except AddressError:
                continue
            successor = self.successor_of(key)
            if successor:
                leavers.append((key, successor))
        if not leavers:
            return made
        block = HeaderBlock.parse(request.message)
        why = is_automatic(request.sender, block)
        for leaver, successor in leavers:
            if why is not None:
                log.info("auto_reply.skipped id=%s leaver=%s sender=%s: %s", request.queue_id, leaver,
                         request.sender or "<>", why)
                continue
            try:
                if not await asyncio.to_thread(self.log.claim, leaver, request.sender.lower(), self.clock(),
                                               self.interval):
                    log.info("auto_reply.skipped id=%s leaver=%s sender=%s: answered within %d days",
                             request.queue_id, leaver, request.sender, self.interval // 86400)
                    continue
                reply = self.compose(leaver, successor, request.sender, block)
                queue_id = await self.spool.commit(Envelope(None, (parse_address(request.sender, allow_utf8=True),)),
                                                   reply, client="auto-reply")
            except Exception as exc:  # noqa: BLE001 - an auto-reply must never cost the delivery
                log.warning("auto_reply.failed id=%s leaver=%s: %s", request.queue_id, leaver, exc)
                continue
            log.info("auto_reply.sent id=%s leaver=%s sender=%s successor=%s as=%s", request.queue_id, leaver,
                     request.sender, successor, queue_id)
            made.append(queue_id)
        return made

    def compose(self, leaver: str, successor: str, sender: str, original: HeaderBlock) -> bytes:
        """The reply (RFC 3834 §3), CRLF line ends."""
        msg = EmailMessage(policy=SMTP)
        msg["From"] = leaver
        msg["To"] = sender
        subject = " ".join((original.first("subject") or "").split())
        if len(subject) > MAX_SUBJECT:  # cut between words, so that no encoded word is cut in half
            subject = subject[:MAX_SUBJECT].rsplit(" ", 1)[0]
        msg["Subject"] = f"Auto: {subject}" if subject else "Auto: has left"
        msg["Date"] = formatdate(self.clock())
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@{self.hostname}>"
        first = _MSG_ID.search(original.first("message-id") or "")
        if first:  # only a plain msg-id (RFC 5322 §3.6.4); none, no In-Reply-To
            refs = _MSG_ID.findall(original.first("references") or "")[-MAX_REFERENCES:]
            msg["In-Reply-To"] = first.group()
            msg["References"] = " ".join([*refs, first.group()])
        msg["Auto-Submitted"] = "auto-replied"
        msg.set_content(f"{leaver} no longer works here. Your message has been forwarded to {successor},\n"
                        f"who now looks after this. Please write to {successor} from now on.\n\n"
                        "This is an automatic reply; you will not get it again for a while.\n")
        return msg.as_bytes()
