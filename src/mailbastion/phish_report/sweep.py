"""Finding copies of a reported message in the users' Maildirs, and moving them into the quarantine.

    sweep = MailboxSweep(maildir, quarantine, audit, clock=system_clock)
    found = sweep.find(fp, mailboxes, window_days=14, exclude={reporter})    # [Copy], newest first
    qid = sweep.move(copy, reporter="alice@example.org", report_id="...", is_ours=...)

Where: every folder of each mailbox (INBOX and its Maildir++ subfolders such as `.Junk`, `.Archive`)
except the owner's own `.Sent` and `.Drafts`; files in `new/` and `cur/` whose modification time (when the
MDA wrote them) is within the window. A copy encrypted at rest cannot be read here and is not found.

Moving one copy, in this order, so that a crash or a failure never loses mail nor removes it unaudited:
1. the copy goes into the quarantine (`QuarantineStore.put_sync`: fsynced) without the MDA's own
   Return-Path and Delivered-To (a release then reaches the mailbox again instead of looking like a loop),
   with the verdict "quarantine, forced by phish_report", symbol PHISH_REPORTED naming why it matched;
2. an audit record `phish.copy_quarantined` (mailbox, quarantine id, file, reporter, why); when the audit
   log cannot record it, the quarantine entry is removed again and the copy stays where it was;
3. the file leaves the Maildir (unlink, folder fsynced) and the mailbox's quota use is recounted.
A copy that a mail client moved or deleted meanwhile is skipped (FileNotFoundError), not an error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mailbastion.core.address import Address, AddressError, parse_address
from mailbastion.core.clock import Clock, system_clock
from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock, HeaderField
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Action, Forced, ScoredSymbol, Verdict
from mailbastion.durable import fsync_dir
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.phish_report.fingerprint import Fingerprint, display_subject
from mailbastion.quarantine.release import AuditSink
from mailbastion.quarantine.store import QuarantineStore

__all__ = ["Copy", "MailboxSweep", "without_delivery_fields"]

log = logging.getLogger("mailbastion.phish_report")

SKIPPED_FOLDERS = frozenset({"sent", "drafts"})  # the owner's own mail, never someone else's phish
MAX_READ = 4 * 1024 * 1024  # a copy larger than this is judged on its first 4 MiB
HELD = Reply(250, "2.0.0", "Held: reported as phishing by a user")
SYMBOL = "PHISH_REPORTED"


@dataclass(frozen=True, slots=True)
class Copy:
    mailbox: Address  # whose
    folder: str  # "INBOX", "Junk", "Archive" ...
    path: Path  # the Maildir file
    reason: str  # why it matched: "message-id", "sender+subject", "url <url>"
    subject: str  # decoded, as people read it
    sender: str  # the From address


def without_delivery_fields(raw: bytes, mailbox: Address) -> bytes:
    """The stored copy as the MDA received it: its Return-Path and the Delivered-To of `mailbox` removed
    (lmtp_handler adds both), line ends made CRLF again (Maildir keeps LF)."""
    block = HeaderBlock.parse(raw)
    box = mailbox.normalized
    seen_return_path = False

    def keep(field: HeaderField) -> bool:
        nonlocal seen_return_path
        if field.name == "return-path" and not seen_return_path:
            seen_return_path = True
            return False
        return not (field.name == "delivered-to" and field.value.strip("<> ").lower() == box)

    data = block.where(keep).to_bytes()
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _return_path(raw: bytes) -> Address | None:
    value = HeaderBlock.parse(raw[:65536]).first("return-path") or ""
    m = re.search(r"<([^<>\s]*)>", value)
    text = (m.group(1) if m else value).strip()
    if not text:
        return None
    try:
        return parse_address(text, allow_utf8=True)
    except (AddressError, ValueError):  # AddressError is a MailError, not a ValueError
        return None


class MailboxSweep:
    def __init__(self, maildir: MaildirStore, quarantine: QuarantineStore, audit: AuditSink, *,
                 clock: Clock = system_clock, ignore_url_hosts: Iterable[str] = ()) -> None:
        self.maildir = maildir
        self.quarantine = quarantine
        self.audit = audit
        self.clock = clock
        self.ignore_url_hosts = tuple(ignore_url_hosts)

    # ---- finding

    def folders(self, mailbox: Address) -> Iterator[tuple[str, Path]]:
        """(name, folder) of every searched folder of the mailbox that exists."""
        try:
            box = self.maildir.mailbox_dir(mailbox)
        except ValueError:
            return
        if not box.is_dir():
            return
        yield "INBOX", box
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(box), key=lambda e: e.name):
                if entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir() \
                        and entry.name[1:].lower() not in SKIPPED_FOLDERS and (Path(entry.path) / "cur").is_dir():
                    yield entry.name[1:], Path(entry.path)

    def files(self, folder: Path, since: float) -> Iterator[Path]:
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder / sub):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.is_file() and entry.stat().st_mtime >= since:
                            yield Path(entry.path)

    def find(self, fp: Fingerprint, mailboxes: Iterable[Address], *, window_days: int,
             exclude: Iterable[str] = (), is_ours: Callable[[str], bool] = lambda d: False,
             limit: int | None = None) -> list[Copy]:
        """Copies of the message `fp` in `mailboxes` (those in `exclude`, normalised addresses, skipped),
        delivered within `window_days`; at most `limit` (None: all). Never raises for one unreadable file."""
        if not fp.is_usable:
            return []
        since = (self.clock() - dt.timedelta(days=window_days)).timestamp()
        skip = {e.lower() for e in exclude}
        out: list[Copy] = []
        for mailbox in mailboxes:
            if mailbox.normalized in skip:
                continue
            for name, folder in self.folders(mailbox):
                for path in self.files(folder, since):
                    try:
                        with open(path, "rb") as fh:
                            raw = fh.read(MAX_READ)
                    except OSError:
                        continue
                    other = Fingerprint.of(raw, ignore_hosts=self.ignore_url_hosts)
                    reason = fp.matches(other, is_ours=is_ours)
                    if reason is None:
                        continue
                    out.append(Copy(mailbox, name, path, reason, display_subject(raw), other.from_address))
                    if limit is not None and len(out) >= limit:
                        return out
        return out

    # ---- moving

    def move(self, copy: Copy, *, reporter: str, report_id: str) -> str | None:
        """Move one copy into the quarantine (see the module docstring); its quarantine id, or None when
        the file was gone already. Raises OSError (disk) or the audit log's error, with the copy in place."""
        try:
            raw = copy.path.read_bytes()
        except FileNotFoundError:
            return None
        message = without_delivery_fields(raw, copy.mailbox)
        envelope = Envelope(_return_path(raw), (copy.mailbox,))
        detail = f"{copy.reason}; reported by {reporter}; from {copy.folder}"
        verdict = Verdict(Action.QUARANTINE, 0.0, (ScoredSymbol(SYMBOL, detail, 0.0, "phish_report"),),
                          forced=Forced(Action.QUARANTINE, HELD, by="phish_report"))
        qid = self.quarantine.put_sync(envelope, message, verdict, client=f"phish-report by {reporter}")
        try:
            self.audit.record("phish.copy_quarantined", actor=f"phish-report:{reporter}",
                              subject=f"mailbox:{copy.mailbox}", reason=f"copy of a reported phishing message ({copy.reason})",
                              details={"report": report_id, "quarantine_id": qid, "folder": copy.folder,
                                       "file": copy.path.name, "sender": copy.sender, "subject": copy.subject[:200],
                                       "match": copy.reason})
        except BaseException:
            with contextlib.suppress(Exception):
                self.quarantine.remove(qid)
            raise
        try:
            os.unlink(copy.path)
        except FileNotFoundError:
            pass  # a client moved or deleted it meanwhile: it is held anyway, and the record says so
        fsync_dir(copy.path.parent)
        with contextlib.suppress(OSError, ValueError):
            self.maildir.recalculate(copy.mailbox)
        log.warning("phish_report.moved mailbox=%s folder=%s file=%s quarantine_id=%s match=%s reporter=%s report=%s",
                    copy.mailbox, copy.folder, copy.path.name, qid, copy.reason, reporter, report_id)
        return qid
