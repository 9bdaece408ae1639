"""(A uniquely named module, not conftest, so test modules can import it.)

Messages and a small world for the loop's tests: real Maildirs (MaildirStore, written as the MDA writes),
a real quarantine with its index, a real audit log (SQLite), a real model store; the directory is the one
in-package fake (`FakeMailboxes`: who is active, our domains) and the spool records what is committed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from mailbastion.audit import AuditLog
from mailbastion.core.address import Address, parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Verdict
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.phish_report.observers import ReportObserver
from mailbastion.phish_report.service import PhishReports
from mailbastion.phish_report.sweep import MailboxSweep
from mailbastion.quarantine.store import QuarantineStore
from mailbastion.spam.store import ModelStore

DOMAIN = "example.org"
ALICE, BOB, CAROL, DAVE = (f"{n}@{DOMAIN}" for n in ("alice", "bob", "carol", "dave"))
PHISHER = "it-helpdesk@secure-mailbox-verify.example"


def phish(*, sender: str = PHISHER, subject: str = "Your mailbox is full: verify your account today",
          msgid: str = "<batch-7731@secure-mailbox-verify.example>",
          url: str = "https://secure-mailbox-verify.example/owa/login.php?u=staff") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"IT Helpdesk <{sender}>"
    msg["To"] = "staff@example.org"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
    msg["Message-ID"] = msgid
    msg.set_content(f"Dear user,\n\nYour mailbox has exceeded its quota. Verify your password here:\n{url}\n\n"
                    "IT Helpdesk\n")
    return msg.as_bytes()


def ordinary(subject: str, *, sender: str = "newsletter@shop.example", msgid: str = "<n-1@shop.example>",
             body: str = "Our autumn catalogue is out: https://shop.example/catalogue/autumn\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "staff@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = msgid
    msg.set_content(body)
    return msg.as_bytes()


def as_mda_copy(raw: bytes, sender: str, mailbox: str) -> bytes:
    """What the MDA writes: Return-Path and Delivered-To on top, LF line ends."""
    return f"Return-Path: <{sender}>\nDelivered-To: {mailbox}\n".encode() + raw.replace(b"\r\n", b"\n")


@dataclass
class FakeMailboxes:
    active: set[str]
    domains: frozenset[str] = frozenset({DOMAIN})

    def is_active(self, address: Address) -> bool:
        return address.normalized in self.active

    def active_mailboxes(self) -> list[Address]:
        return [parse_address(a) for a in sorted(self.active)]

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.domains


@dataclass
class RecordingSpool:
    commits: list[tuple[Envelope, bytes]] = field(default_factory=list)

    async def commit(self, envelope: Envelope, message: bytes, *, client: str, verdict: Verdict | None = None,
                     hops: int = 0) -> str:
        self.commits.append((envelope, message))
        return f"Q{len(self.commits)}"

    def to(self, address: str) -> list[str]:
        """The text of each message committed to `address`."""
        return [message_from_bytes(m, policy=default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
                for e, m in self.commits if [str(r) for r in e.recipients] == [address]]


class World:
    def __init__(self, root: Path, *, observers: list[ReportObserver] | None = None, max_copies: int = 500,
                 window_days: int = 14, learn: bool = True) -> None:
        self.root = root
        self.maildir = MaildirStore(root / "mail")
        self.quarantine = QuarantineStore(root / "quarantine")
        self.audit = AuditLog(f"sqlite:///{root / 'audit.db'}")
        self.model = ModelStore(root / "spam" / "model.joblib")
        self.mailboxes = FakeMailboxes({ALICE, BOB, CAROL, DAVE})
        self.spool = RecordingSpool()
        self.sweep = MailboxSweep(self.maildir, self.quarantine, self.audit, ignore_url_hosts=("www.w3.org",))
        self.index_syncs = 0
        self.reports = PhishReports(mailboxes=self.mailboxes, sweep=self.sweep, audit=self.audit, spool=self.spool,
                                    learner=self.model if learn else None, observers=observers or [],
                                    window_days=window_days, max_copies=max_copies,
                                    portal_url="https://portal.example.org", after_moves=self._synced,
                                    clock=lambda: dt.datetime.now(dt.UTC))

    def _synced(self) -> None:
        self.index_syncs += 1

    def deliver(self, mailbox: str, raw: bytes, *, sender: str = PHISHER, folder: Any = None) -> Path:
        from mailbastion.core.verdict import Folder

        return self.maildir.deliver(parse_address(mailbox), as_mda_copy(raw, sender, mailbox),
                                    folder=folder or Folder.INBOX)

    def learned(self) -> list[str]:
        log = self.root / "spam" / "learned.log"
        return log.read_text().splitlines() if log.exists() else []

    def events(self, action: str) -> list[Any]:
        return [e for e in self.audit.events(limit=None) if e.action == action]
