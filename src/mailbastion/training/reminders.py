"""Reminders about assigned training, mailed to the user, and the scheduler's training round.

    due = reminders_due(assignments, now, section)      # [(address, [AssignmentView])]: pure, no I/O
    sent = await send_reminders(settings, directory, spool)   # [(address, queue id)]
    report = await training_round(settings, directory, spool)  # joiners, reminders, due campaigns

A reminder goes `remind_before_days` before the due date (once), then every `overdue_every_days` while the
assignment is overdue. One message per person lists every module that needs a reminder, committed to our
spool like the quarantine digest (then our own spool → LMTP → MDA path). The reminder time is written
after the commit, so a crash in between repeats a reminder rather than losing it.

`training_round` is what the internal role's lifecycle scheduler runs every check (lifecycle/scheduler.py):
mandatory modules for every active account that lacks them (a joiner the minute it becomes active),
reminders, and the campaigns whose start time has come.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.training.store import AssignmentView, TrainingStore

if TYPE_CHECKING:
    from mailbastion.config import Settings
    from mailbastion.config.sections.training import TrainingSection
    from mailbastion.directory.store import Directory
    from mailbastion.spool.writer import Spool

__all__ = ["RoundReport", "reminder_message", "reminders_due", "send_reminders", "training_round"]

log = logging.getLogger("mailbastion.training")


def _needs(a: AssignmentView, now: dt.datetime, section: TrainingSection) -> bool:
    if a.completed_at is not None:
        return False
    if now >= a.due_at:
        every = section.overdue_every_days
        if every <= 0:
            return False
        return a.reminded_at is None or a.reminded_at < a.due_at or now - a.reminded_at >= dt.timedelta(days=every)
    soon = a.due_at - dt.timedelta(days=section.remind_before_days)
    return section.remind_before_days > 0 and now >= soon and (a.reminded_at is None or a.reminded_at < soon)


def reminders_due(assignments: Sequence[AssignmentView], now: dt.datetime,
                  section: TrainingSection) -> list[tuple[str, list[AssignmentView]]]:
    people: dict[str, list[AssignmentView]] = {}
    for a in assignments:
        if _needs(a, now, section):
            people.setdefault(a.address, []).append(a)
    return sorted(people.items())


def reminder_message(address: str, items: Sequence[AssignmentView], titles: dict[str, str], *, sender: str,
                     portal_url: str, now: dt.datetime) -> bytes:
    overdue = [a for a in items if a.due_at <= now]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Security training <{sender}>"
    msg["To"] = address
    msg["Subject"] = (f"Overdue: {len(overdue)} training module(s) to complete" if overdue else
                      f"Reminder: {len(items)} training module(s) due soon")
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies to this
    lines = ["This is a reminder from the mail system about your security training.", ""]
    for a in items:
        state = "OVERDUE since" if a.due_at <= now else "due"
        lines += [f"- {titles.get(a.module, a.module)}: {state} {a.due_at:%Y-%m-%d %H:%M} UTC",
                  f"  {portal_url}/my/training/{a.module}", ""]
    lines += ["Sign in to the portal yourself (type its address; do not trust links in mail you did not expect):",
              f"{portal_url}/my/training", ""]
    msg.set_content("\n".join(lines), charset="utf-8")
    return msg.as_bytes()


async def send_reminders(settings: Settings, directory: Directory, spool: Spool) -> list[tuple[str, str]]:
    from mailbastion.training.modules import load_modules

    store = TrainingStore(directory)
    now = store.now()
    assignments = await asyncio.to_thread(store.assignments)
    active = set(await asyncio.to_thread(store.active_accounts))
    titles = {m.id: m.title for m in (await asyncio.to_thread(load_modules, settings)).values()}
    portal_url = settings.portal.base_url(settings.server.hostname)
    sent: list[tuple[str, str]] = []
    for address, items in reminders_due([a for a in assignments if a.address in active], now, settings.training):
        sender = f"{settings.training.sender_local_part}@{address.rpartition('@')[2]}"
        raw = reminder_message(address, items, titles, sender=sender, portal_url=portal_url, now=now)
        queue_id = await spool.commit(Envelope(parse_address(sender), (parse_address(address),)), raw,
                                      client="training-reminder")
        for a in items:
            await asyncio.to_thread(store.mark_reminded, address, a.module, now)
        sent.append((address, queue_id))
    if sent:
        log.info("training.reminders sent=%d", len(sent))
    return sent


@dataclass
class RoundReport:
    assigned: dict[str, list[str]] = field(default_factory=dict)
    reminders: list[tuple[str, str]] = field(default_factory=list)
    campaigns: dict[str, int] = field(default_factory=dict)


async def training_round(settings: Settings, directory: Directory, spool: Spool) -> RoundReport:
    """One round of the scheduler: joiners' mandatory modules, reminders, campaigns due. Raises what the
    database or the spool raise (the scheduler logs it and tries at its next check)."""
    from mailbastion.training.campaigns import CampaignStore
    from mailbastion.training.modules import load_modules

    section = settings.training
    report = RoundReport()
    modules = await asyncio.to_thread(load_modules, settings)
    mandatory = [m for m in section.mandatory if m in modules]
    store = TrainingStore(directory)
    report.assigned = await asyncio.to_thread(store.assign_missing, mandatory, due_days=section.due_days)
    report.reminders = await send_reminders(settings, directory, spool)
    campaigns = CampaignStore(directory, settings)
    report.campaigns = await campaigns.send_due(spool, portal_url=settings.portal.base_url(settings.server.hostname))
    for module, who in report.assigned.items():
        log.info("training.assigned module=%s accounts=%d", module, len(who))
    return report
