"""The report-a-phish loop: one report in, the reporter acknowledged, the message learned, its copies held.

    reports = PhishReports(mailboxes=..., sweep=..., learner=model_store, audit=..., spool=..., observers=[...])
    outcome = await reports.process(PhishReport.new(reporter, messages, how="attachment"))

For each reported message (a report mail may carry several; the portal's button reports one):
1. observers first (observers.py): one that says `Handled` takes the message (a phishing simulation):
   acknowledged with its note, neither learned nor swept;
2. learned as spam (`ModelStore.learn_many`, source "phish-report"), when `learn` is on and a learner exists;
3. copies in other users' mailboxes found (fingerprint.py) and moved into the quarantine (sweep.py), at most
   `max_copies` per report, each with its audit record `phish.copy_quarantined`;
then one audit record `phish.report` (subject `phish-reports`: `mailbastion phish reports` lists them), the
quarantine index brought up to date, the acknowledgement committed to the spool for the reporter, and a
notice to each affected user (`notify_affected`).

Only an active account of ours may report: anyone else's report is refused before anything happens (the
callers check first too: submission authenticated the user, the portal signed them in). A failing learner is
logged and the sweep still runs; a failing acknowledgement is logged (the sweep is done and audited).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailbastion.core.address import Address, parse_address
from mailbastion.core.clock import Clock, system_clock
from mailbastion.core.envelope import Envelope
from mailbastion.core.ports import SpoolWriter
from mailbastion.phish_report import notices
from mailbastion.phish_report.fingerprint import Fingerprint, display_subject
from mailbastion.phish_report.observers import Handled, ReportObserver
from mailbastion.phish_report.sweep import Copy, MailboxSweep
from mailbastion.quarantine.release import AuditSink

__all__ = ["AUDIT_SUBJECT", "Learner", "Mailboxes", "MovedCopy", "PhishReport", "PhishReports", "ReportOutcome",
           "new_report_id"]

log = logging.getLogger("mailbastion.phish_report")

AUDIT_SUBJECT = "phish-reports"  # every report's audit record has this subject (`phish reports` reads them)


def new_report_id(now: dt.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


class Mailboxes(Protocol):
    """What the loop asks the directory (apps/phish_report.py adapts `Directory`)."""

    def is_active(self, address: Address) -> bool: ...

    def active_mailboxes(self) -> Sequence[Address]: ...

    def is_local_domain(self, domain: str) -> bool: ...


class Learner(Protocol):
    """`spam.store.ModelStore` satisfies it."""

    def learn_many(self, raws: Sequence[bytes], *, is_spam: bool, source: str, note: str = "") -> list[int]: ...


@dataclass(frozen=True, slots=True)
class PhishReport:
    report_id: str
    reporter: Address
    messages: tuple[bytes, ...]  # the reported messages themselves (unwrapped)
    how: str  # "attachment" | "bounce" | "inline" | "none" (mail), "portal", "admin"

    @staticmethod
    def new(reporter: Address, messages: Iterable[bytes], *, how: str, now: dt.datetime | None = None) -> PhishReport:
        return PhishReport(new_report_id(now or system_clock()), reporter, tuple(messages), how)


@dataclass(frozen=True, slots=True)
class MovedCopy:
    mailbox: str
    quarantine_id: str
    folder: str
    match: str
    subject: str
    sender: str


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    report_id: str
    reporter: str
    refused: str = ""  # why nothing was done ("" when the report was taken)
    subjects: tuple[str, ...] = ()  # of the reported messages, decoded, for people
    handled: tuple[Handled, ...] = ()  # observers that took a message
    learned: int = 0
    moved: tuple[MovedCopy, ...] = ()
    matched: int = 0  # copies found (may exceed moved: max_copies, or a copy gone meanwhile)
    truncated: bool = False  # more copies than max_copies
    errors: tuple[str, ...] = field(default=())

    @property
    def nothing_found(self) -> bool:
        return not self.refused and not self.subjects


class PhishReports:
    def __init__(self, *, mailboxes: Mailboxes, sweep: MailboxSweep, audit: AuditSink, spool: SpoolWriter | None,
                 learner: Learner | None = None, observers: Sequence[ReportObserver] = (),
                 window_days: int = 14, max_copies: int = 500, notify_affected: bool = True,
                 portal_url: str = "", after_moves: Callable[[], object] | None = None,
                 clock: Clock = system_clock) -> None:
        self.mailboxes = mailboxes
        self.sweep = sweep
        self.audit = audit
        self.spool = spool
        self.learner = learner
        self.observers = list(observers)
        self.window_days = window_days
        self.max_copies = max_copies
        self.notify_affected = notify_affected
        self.portal_url = portal_url.rstrip("/")
        self.after_moves = after_moves  # the quarantine index's sync, so the portal lists the copies at once
        self.clock = clock

    # ---- the whole loop

    async def process(self, report: PhishReport) -> ReportOutcome:
        """Handle `report` (blocking parts in a worker thread), then acknowledge and notify through the spool."""
        outcome = await asyncio.to_thread(self.handle, report)
        if not outcome.refused:
            await self._send_notices(outcome)
        return outcome

    def handle(self, report: PhishReport) -> ReportOutcome:
        """Observers, learning, sweep and audit (blocking). Never raises for a learner failure."""
        reporter = report.reporter
        if not self.mailboxes.is_active(reporter):
            log.warning("phish_report.refused reporter=%s report=%s: not an active account of ours", reporter,
                        report.report_id)
            return ReportOutcome(report.report_id, str(reporter), refused="the reporter is not an active account of ours")
        handled: list[Handled] = []
        real: list[bytes] = []
        for message in report.messages:
            taken = self._observe(message, str(reporter))
            if taken is not None:
                handled.append(taken)
            else:
                real.append(message)
        errors: list[str] = []
        learned = self._learn(real, report, errors)
        moved, matched, truncated = self._sweep(real, actor=str(reporter), exclude={reporter.normalized},
                                                report_id=report.report_id, errors=errors)
        subjects = tuple(display_subject(m) for m in report.messages)
        outcome = ReportOutcome(report.report_id, str(reporter), subjects=subjects, handled=tuple(handled),
                                learned=learned, moved=tuple(moved), matched=matched, truncated=truncated,
                                errors=tuple(errors))
        self.audit.record("phish.report", actor=str(reporter), subject=AUDIT_SUBJECT,
                          reason=f"reported as phishing ({report.how})", details=self._details(report.report_id, report.how, report.messages, outcome))
        log.warning("phish_report.report id=%s reporter=%s how=%s messages=%d handled=%d learned=%d matched=%d moved=%d%s",
                    report.report_id, reporter, report.how, len(report.messages), len(handled), learned, matched,
                    len(moved), " truncated" if truncated else "")
        return outcome

    async def sweep_by_hand(self, messages: Sequence[bytes], *, actor: str, reason: str = "") -> ReportOutcome:
        """The administrator's sweep (`mailbastion phish sweep`): copies of `messages` in every active
        mailbox moved into the quarantine, audited as `phish.sweep`; no observer, no learning, no
        acknowledgement; the affected users are told when `notify_affected`."""
        report_id = new_report_id(self.clock())
        errors: list[str] = []
        moved, matched, truncated = await asyncio.to_thread(self._sweep, messages, actor=actor, exclude=(),
                                                            report_id=report_id, errors=errors)
        outcome = ReportOutcome(report_id, actor, subjects=tuple(display_subject(m) for m in messages),
                                moved=tuple(moved), matched=matched, truncated=truncated, errors=tuple(errors))
        details = self._details(report_id, "admin", messages, outcome)
        await asyncio.to_thread(self.audit.record, "phish.sweep", actor=actor, subject=AUDIT_SUBJECT,
                                reason=reason or "swept by hand", details=details)
        if self.notify_affected:
            await self._notify(outcome)
        return outcome

    # ---- the steps

    def _observe(self, message: bytes, reporter: str) -> Handled | None:
        for observer in self.observers:
            try:
                taken = observer.observe(message, reporter)
            except Exception:  # a real phish must not escape because an observer failed (observers.py)
                log.exception("phish_report observer %s failed; the report goes on as a real one",
                              getattr(observer, "name", observer))
                continue
            if taken is not None:
                return taken
        return None

    def _learn(self, messages: list[bytes], report: PhishReport, errors: list[str]) -> int:
        if not messages or self.learner is None:
            return 0
        try:
            self.learner.learn_many(messages, is_spam=True, source="phish-report",
                                    note=f"{report.how} by {report.reporter} ({report.report_id})")
        except Exception as exc:  # noqa: BLE001 - the sweep matters more than the model
            log.error("phish_report learning failed report=%s: %s", report.report_id, exc)
            errors.append(f"learning failed: {exc}")
            return 0
        return len(messages)

    def find_copies(self, messages: Sequence[bytes], *, exclude: Iterable[str] = (),
                    limit: int | None = None) -> list[Copy]:
        """Copies of `messages` in the active mailboxes (but those in `exclude`), within the window."""
        boxes = list(self.mailboxes.active_mailboxes())
        found: dict[str, Copy] = {}
        for message in messages:
            fp = Fingerprint.of(message, ignore_hosts=self.sweep.ignore_url_hosts)
            for copy in self.sweep.find(fp, boxes, window_days=self.window_days, exclude=exclude,
                                        is_ours=self.mailboxes.is_local_domain, limit=limit):
                found.setdefault(str(copy.path), copy)
        return list(found.values())

    def _sweep(self, messages: Sequence[bytes], *, actor: str, exclude: Iterable[str], report_id: str,
               errors: list[str]) -> tuple[list[MovedCopy], int, bool]:
        if not messages or self.max_copies <= 0:
            return [], 0, False
        copies = self.find_copies(messages, exclude=exclude, limit=self.max_copies + 1)
        truncated = len(copies) > self.max_copies
        moved: list[MovedCopy] = []
        for copy in copies[: self.max_copies]:
            try:
                qid = self.sweep.move(copy, reporter=actor, report_id=report_id)
            except Exception as exc:  # noqa: BLE001 - one copy's failure does not stop the others
                log.error("phish_report could not move %s of %s: %s", copy.path.name, copy.mailbox, exc)
                errors.append(f"{copy.mailbox}: {exc}")
                continue
            if qid is not None:
                moved.append(MovedCopy(str(copy.mailbox), qid, copy.folder, copy.reason, copy.subject, copy.sender))
        if moved and self.after_moves is not None:
            try:
                self.after_moves()
            except Exception as exc:  # noqa: BLE001 - the index is a cache; the files are the truth
                log.warning("phish_report quarantine index not updated: %s", exc)
        return moved, len(copies), truncated

    @staticmethod
    def _details(report_id: str, how: str, messages: Sequence[bytes], outcome: ReportOutcome) -> dict[str, object]:
        described = []
        for message in messages[:20]:
            fp = Fingerprint.of(message)
            described.append({"from": fp.from_address, "subject": display_subject(message)[:200],
                              "message_id": fp.message_id[:200]})
        return {"report": report_id, "how": how, "messages": described,
                "handled_by": [h.by for h in outcome.handled], "learned": outcome.learned,
                "matched": outcome.matched, "truncated": outcome.truncated,
                "moved": [{"mailbox": m.mailbox, "quarantine_id": m.quarantine_id, "match": m.match}
                          for m in outcome.moved[:500]],
                "errors": list(outcome.errors[:20])}

    # ---- the mails

    async def _send_notices(self, outcome: ReportOutcome) -> None:
        if self.spool is None:
            return
        now = self.clock()
        domain = outcome.reporter.rpartition("@")[2]
        sender = f"postmaster@{domain}"
        ack = notices.acknowledgement(reporter=outcome.reporter, sender=sender, now=now, subjects=outcome.subjects,
                                      report_id=outcome.report_id, learned=outcome.learned, moved=len(outcome.moved),
                                      truncated=outcome.truncated, notes=[h.note for h in outcome.handled],
                                      nothing_found=outcome.nothing_found)
        await self._commit(outcome.reporter, ack, "acknowledgement")
        if self.notify_affected:
            await self._notify(outcome)

    async def _notify(self, outcome: ReportOutcome) -> None:
        if self.spool is None:
            return
        now = self.clock()
        for copy in outcome.moved:
            notice = notices.affected_notice(mailbox=copy.mailbox, sender=f"postmaster@{copy.mailbox.rpartition('@')[2]}",
                                             now=now, subject=copy.subject, from_address=copy.sender,
                                             quarantine_url=f"{self.portal_url}/my/quarantine/{copy.quarantine_id}")
            await self._commit(copy.mailbox, notice, "notice")

    async def _commit(self, to: str, raw: bytes, what: str) -> None:
        assert self.spool is not None
        try:
            queue_id = await self.spool.commit(Envelope(None, (parse_address(to),)), raw, client="phish-report")
        except Exception as exc:  # noqa: BLE001 - the report is done and audited; the mail is a courtesy
            log.error("phish_report could not queue the %s to %s: %s", what, to, exc)
            return
        log.info("phish_report.%s to=%s queue_id=%s", what, to, queue_id)
