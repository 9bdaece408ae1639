"""The report-a-phish loop (issue 13, measure 8): a user reports a phishing message, by mail to
`report-phish@<our domain>` through submission or with the portal's button; the report is acknowledged, the
message learned as spam, and its copies in other users' mailboxes moved into the quarantine, audited.

    fingerprint.py   what identifies a message, and when another is a copy of it
    sweep.py         finding copies in the Maildirs and moving them into the quarantine
    observers.py     the seam consulted first (phishing simulations: acknowledged, not learned or swept)
    service.py       PhishReports: one report through the whole loop
    intake.py        report mails seen at submission, kept on disk, handled in the background
    inbox.py         a user's INBOX for the portal's report page
    notices.py       the acknowledgement and the notice to affected users
"""

from mailbastion.phish_report.fingerprint import Fingerprint
from mailbastion.phish_report.inbox import InboxEntry, InboxPage, InboxReader
from mailbastion.phish_report.intake import ReportingSubmission, ReportIntake
from mailbastion.phish_report.observers import Handled, ReportObserver, SimulationObserver
from mailbastion.phish_report.service import (
    AUDIT_SUBJECT,
    MovedCopy,
    PhishReport,
    PhishReports,
    ReportOutcome,
)
from mailbastion.phish_report.sweep import Copy, MailboxSweep

__all__ = [
    "AUDIT_SUBJECT",
    "Copy",
    "Fingerprint",
    "Handled",
    "InboxEntry",
    "InboxPage",
    "InboxReader",
    "MailboxSweep",
    "MovedCopy",
    "PhishReport",
    "PhishReports",
    "ReportIntake",
    "ReportObserver",
    "ReportOutcome",
    "ReportingSubmission",
    "SimulationObserver",
]
