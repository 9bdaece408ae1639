"""The MDA: Maildir delivery under quota, exactly once per queue entry, behind the LMTP server the
gateway delivers to."""

from __future__ import annotations

from mailbastion.mailbox.journal import DeliveredJournal
from mailbastion.mailbox.lmtp_handler import LmtpHandler, MailboxDirectory
from mailbastion.mailbox.lmtp_server import MdaServer
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.mailbox.quota import QuotaExceeded

__all__ = ["DeliveredJournal", "LmtpHandler", "MailboxDirectory", "MaildirStore", "MdaServer", "QuotaExceeded"]
