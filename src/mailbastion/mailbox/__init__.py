"""The MDA: Maildir delivery under quota, and the LMTP server the gateway delivers to."""

from __future__ import annotations

from mailbastion.mailbox.lmtp_server import LmtpHandler, MailboxDirectory, MdaServer
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.mailbox.quota import QuotaExceeded

__all__ = ["LmtpHandler", "MailboxDirectory", "MaildirStore", "MdaServer", "QuotaExceeded"]
