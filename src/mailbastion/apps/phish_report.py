"""Composition of the report-a-phish loop (phish_report/): wiring only.

    reports = build_phish_reports(settings, directory)        # PhishReports over this host's mailboxes
    intake = build_intake(settings, directory)                # submission's report mails (role_submission)
    desk = PortalPhishDesk(reports, InboxReader(...))         # the portal's page (role_internal)

What each role gets (the gateway role never loads any of it: it has no mailboxes):
- all-in-one: submission and the portal run in the parent process next to the mailboxes; acknowledgements
  are committed to the main spool, whose queue manager (the gateway's, in the same process) delivers them;
- internal host of a split: the same, except that acknowledgements go into submission's outbox
  (`submission.spool_dir`), whose queue manager relays them through the gateway back to the MDA. Swept
  copies go into this host's quarantine folder (`antivirus.quarantine.dir`), the one the portal shows; the
  model learned is this host's (`spam.classifier.model_path`, as Junk moves teach it): the gateway's
  classifier does not see it until the model file is copied there.

`report_observers(settings)` is where the phishing simulations of `mailbastion.training` are wired:
`SimulationObserver(simulation.recognise, campaigns.record_reported)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.config import Settings
from mailbastion.core.address import Address, AddressError, parse_address
from mailbastion.core.ports import SpoolWriter
from mailbastion.phish_report.inbox import InboxPage, InboxReader
from mailbastion.phish_report.observers import ReportObserver
from mailbastion.phish_report.service import PhishReport, PhishReports, ReportOutcome

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory
    from mailbastion.phish_report.intake import ReportIntake

__all__ = ["DirectoryMailboxes", "PortalPhishDesk", "build_intake", "build_phish_reports", "notice_spool",
           "report_observers"]

log = logging.getLogger("mailbastion.phish_report")


def report_observers(settings: Settings) -> list[ReportObserver]:
    """The observers consulted before a report is treated as a real phish (phish_report/observers.py): with
    training on, a reported phishing simulation of ours (its HMAC mark verifies) is recorded as reported in
    its campaign, acknowledged, and neither learned nor swept."""
    if not settings.training.enabled:
        return []
    from mailbastion.phish_report.observers import SimulationObserver
    from mailbastion.training.campaigns import record_reported
    from mailbastion.training.simulation import recognise

    return [SimulationObserver(lambda raw: recognise(raw, settings),
                               lambda hit, reporter: record_reported(hit, reporter, settings))]


class DirectoryMailboxes:
    """`phish_report.service.Mailboxes` over the directory: active accounts are the mailboxes searched."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def is_active(self, address: Address) -> bool:
        return bool(self.directory.is_active(address))

    def is_local_domain(self, domain: str) -> bool:
        return bool(self.directory.is_local_domain(domain))

    def active_mailboxes(self) -> Sequence[Address]:
        from mailbastion.directory.models import AccountState

        out = []
        for info in self.directory.list_accounts(state=AccountState.ACTIVE):
            if not info.is_active:
                continue
            try:
                out.append(parse_address(info.address, allow_utf8=True))
            except AddressError:
                continue
        return out


def notice_spool(settings: Settings) -> SpoolWriter:
    """Where the loop's mails are committed: `Spool.for_system_mail` (submission's outbox on the internal host
    of a split, whose queue manager relays through the gateway; else the main spool)."""
    from mailbastion.spool.writer import Spool

    return Spool.for_system_mail(settings)


def build_phish_reports(settings: Settings, directory: Directory | None = None, *,
                        spool: SpoolWriter | None = None,
                        observers: Sequence[ReportObserver] | None = None) -> PhishReports:
    """The loop over this host's mailboxes, quarantine, audit log and model. Opens the directory when not given."""
    from mailbastion.directory.store import Directory as DirectoryStore
    from mailbastion.mailbox.maildir import MaildirStore
    from mailbastion.phish_report.sweep import MailboxSweep
    from mailbastion.quarantine.index import QuarantineIndex
    from mailbastion.quarantine.store import QuarantineStore
    from mailbastion.spam.store import ModelStore

    directory = directory or DirectoryStore.from_settings(settings)
    p = settings.phish_report
    maildir = MaildirStore(settings.path(settings.mailbox.root), default_quota_bytes=settings.mailbox.default_quota_bytes,
                           junk_folder=settings.mailbox.junk_folder)
    quarantine = QuarantineStore.from_settings(settings)
    sweep = MailboxSweep(maildir, quarantine, directory.audit, clock=directory.now, ignore_url_hosts=p.ignore_url_hosts)
    learner = (ModelStore(settings.path(settings.spam.classifier.model_path))
               if p.learn and settings.spam.enabled else None)

    def sync_index() -> None:
        index = QuarantineIndex(quarantine, recipient_delimiter=settings.mailbox.recipient_delimiter)
        try:
            index.sync()
        finally:
            index.close()

    return PhishReports(mailboxes=DirectoryMailboxes(directory), sweep=sweep, audit=directory.audit,
                        spool=spool if spool is not None else notice_spool(settings), learner=learner,
                        observers=report_observers(settings) if observers is None else observers,
                        window_days=p.match_window_days, max_copies=p.max_copies, notify_affected=p.notify_affected,
                        portal_url=settings.portal.base_url(settings.server.hostname), after_moves=sync_index,
                        clock=directory.now)


def build_intake(settings: Settings, directory: Directory) -> ReportIntake:
    from mailbastion.phish_report.intake import ReportIntake

    return ReportIntake(build_phish_reports(settings, directory), folder=settings.path("phish-reports"),
                        local_part=settings.phish_report.local_part, is_local_domain=directory.is_local_domain,
                        clock=directory.now)


class PortalPhishDesk:
    """What the portal's report page needs (portal/phish_pages.py `PhishDesk`)."""

    def __init__(self, reports: PhishReports, inbox: InboxReader) -> None:
        self.reports = reports
        self.inbox = inbox

    @staticmethod
    def from_settings(settings: Settings, directory: Directory | None = None) -> PortalPhishDesk:
        from mailbastion.mailbox.maildir import MaildirStore

        reports = build_phish_reports(settings, directory)
        return PortalPhishDesk(reports, InboxReader(MaildirStore(settings.path(settings.mailbox.root),
                                                                 junk_folder=settings.mailbox.junk_folder)))

    async def inbox_page(self, address: str, offset: int, limit: int) -> InboxPage:
        return await asyncio.to_thread(self.inbox.page, parse_address(address, allow_utf8=True), offset=offset,
                                       limit=limit)

    async def report(self, address: str, key: str) -> ReportOutcome | None:
        """Report the INBOX message `key` of `address`; None when there is no such message."""
        who = parse_address(address, allow_utf8=True)
        try:
            raw = await asyncio.to_thread(self.inbox.read, who, key)
        except KeyError:
            return None
        return await self.reports.process(PhishReport.new(who, [raw], how="portal", now=self.reports.clock()))
