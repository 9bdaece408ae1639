"""Report mails: recognised at submission, kept on disk, handled in the background.

    intake = ReportIntake(reports, folder=data_dir / "phish-reports", local_part="report-phish",
                          is_local_domain=directory.is_local_domain)
    handler = ReportingSubmission(submission_handler, intake)     # the listener's handler, wrapped
    await intake.start()                                          # handles reports a crash left behind
    ...
    await intake.stop()

Where a report is seen, in every role: users send through submission (the internal host, or the all-in-one
process), logged in. A message accepted there (the inner handler's reply is positive) with a recipient
`report-phish@<one of our domains>` is a report by the logged-in account, the strongest proof of who reports
there is: the MX, which anyone on the Internet reaches, never triggers a sweep (an outsider's "report" is
ordinary mail to the report address). The message itself still travels on to the report address (an alias
of postmaster@ made by `init`), so the security team reads every report.

A report mail the gateway's outbound filter refuses (554 5.7.1 "Not sent: ...": the phish inside carries
malware or scores as spam) and that was written to the report address alone is kept all the same, answered
250 "phishing report <id> received": the report mailbox does not get that copy, the loop still runs.

Durability: the report (reporter + raw bytes) is written and fsynced in `<folder>/pending/` before the
reply goes back to the client; a background task claims it by rename (`.work`), hands it to
`PhishReports.process`, and removes it. At start, reports left pending or half-handled by a crash are
handled again (a sweep run twice finds nothing the second time; the model learns the message twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mailbastion.core.address import Address, AddressError, parse_address
from mailbastion.core.clock import Clock, system_clock
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.replies import Reply
from mailbastion.durable import fsync_dir, write_durably
from mailbastion.phish_report.service import PhishReport, PhishReports, new_report_id
from mailbastion.spam.report import unwrap

__all__ = ["ReportIntake", "ReportingSubmission"]

log = logging.getLogger("mailbastion.phish_report")


class ReportIntake:
    def __init__(self, reports: PhishReports, *, folder: Path, local_part: str,
                 is_local_domain: Callable[[str], bool], clock: Clock = system_clock) -> None:
        self.reports = reports
        self.pending = folder / "pending"
        self.local_part = local_part.lower()
        self.is_local_domain = is_local_domain
        self.clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        old = os.umask(0o077)
        try:
            self.pending.mkdir(parents=True, exist_ok=True, mode=0o700)
        finally:
            os.umask(old)

    def is_report_address(self, rcpt: Address) -> bool:
        return rcpt.unquoted_local.lower() == self.local_part and self.is_local_domain(rcpt.domain)

    def is_report(self, recipients: Iterable[Address]) -> bool:
        return any(self.is_report_address(r) for r in recipients)

    # ---- taking a report

    def keep(self, reporter: str, raw: bytes) -> str:
        """Write the report durably (message first, then its record); return its id."""
        report_id = new_report_id(self.clock())
        write_durably(self.pending / f"{report_id}.eml", raw, exclusive=True)
        record = {"id": report_id, "reporter": reporter, "received_at": self.clock().isoformat(timespec="seconds")}
        write_durably(self.pending / f"{report_id}.json", json.dumps(record).encode(), exclusive=True)
        fsync_dir(self.pending)
        return report_id

    async def accept(self, reporter: str, raw: bytes) -> str:
        report_id = await asyncio.to_thread(self.keep, reporter, raw)
        log.info("phish_report.received id=%s reporter=%s size=%d", report_id, reporter, len(raw))
        self._spawn()
        return report_id

    def _spawn(self) -> None:
        task = asyncio.create_task(self.drain(), name="phish-report")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- handling what was kept

    async def start(self) -> None:
        for work in self.pending.glob("*.json.work"):  # a crash came mid-way: handle it again
            with contextlib.suppress(OSError):
                os.rename(work, work.with_suffix(""))
        if any(self.pending.glob("*.json")):
            self._spawn()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def drain(self) -> int:
        """Handle every pending report; return how many. One at a time in this process."""
        done = 0
        async with self._lock:
            for record in sorted(self.pending.glob("*.json")):
                work = record.with_name(record.name + ".work")
                try:
                    os.rename(record, work)  # the claim: another drainer loses the race here
                except FileNotFoundError:
                    continue
                try:
                    await self._handle(work)
                except Exception:
                    log.exception("phish_report could not handle %s; kept for the next start", record.name)
                    with contextlib.suppress(OSError):
                        os.rename(work, record)
                    continue
                done += 1
        return done

    async def _handle(self, work: Path) -> None:
        data = json.loads(work.read_text(encoding="utf-8"))
        eml = self.pending / f"{data['id']}.eml"
        raw = await asyncio.to_thread(eml.read_bytes)
        messages, how = await asyncio.to_thread(unwrap, raw)
        try:
            reporter = parse_address(str(data["reporter"]), allow_utf8=True)
        except AddressError:
            log.error("phish_report %s: unreadable reporter %r, dropped", data["id"], data.get("reporter"))
        else:
            await self.reports.process(PhishReport(str(data["id"]), reporter, tuple(messages), how))
        work.unlink(missing_ok=True)
        eml.unlink(missing_ok=True)
        fsync_dir(self.pending)


class ReportingSubmission:
    """The submission handler with the report address watched: every stage goes to `inner` unchanged; after
    an accepted DATA whose recipients include the report address, the report is kept for `intake`."""

    def __init__(self, inner: Any, intake: ReportIntake) -> None:
        self._inner = inner
        self.intake = intake

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def on_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Reply:
        reply: Reply = await self._inner.on_data(peer, envelope, message)
        user = peer.authenticated_as
        if not user or not self.intake.is_report(envelope.recipients):
            return reply
        if reply.is_positive:
            try:
                await self.intake.accept(user, message.raw)
            except Exception as exc:  # noqa: BLE001 - the message was sent; the report is still in the mailbox
                log.error("phish_report could not keep the report of %s: %s", user, exc)
            return reply
        if not _held_back_by_outbound_filter(reply) or not all(self.intake.is_report_address(r)
                                                               for r in envelope.recipients):
            return reply
        # The gateway's outbound checks refused the report mail itself, because the phish inside it carries what
        # they refuse (malware, a spam score): the report still counts. Only the report address was written to,
        # so nothing else is lost; the report mailbox does not get this one (its audit record names it).
        try:
            report_id = await self.intake.accept(user, message.raw)
        except Exception as exc:  # noqa: BLE001 - the filter's refusal is then the user's answer
            log.error("phish_report could not keep the report of %s: %s", user, exc)
            return reply
        log.warning("phish_report.kept_despite_refusal id=%s reporter=%s refusal=%r", report_id, user, reply.text[:200])
        return Reply(250, "2.0.0", f"Ok: phishing report {report_id} received (the report mailbox does not get a "
                     "copy: the outbound filter refused what it carries)")


def _held_back_by_outbound_filter(reply: Reply) -> bool:
    """The gateway's content refusal of an outbound message (gateway/relay_handler.py `outbound_refusal`:
    "554 5.7.1 Not sent: malware detected ..." / "... looks like spam ..."), passed on by submission's outbox.
    Not a refusal about the user (a suspended sender, a From that is not theirs: 550)."""
    return reply.code == 554 and reply.status == "5.7.1" and reply.text.startswith("Not sent: ")
