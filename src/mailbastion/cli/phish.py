"""`mailbastion phish sweep --message FILE [--dry-run]` and `phish reports [--days N]`: the report-a-phish
loop by hand (phish_report/). Run on the host with the mailboxes (all-in-one, or the internal host)."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import os
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group


def _actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001
        user = str(os.getuid())
    return f"cli:{user}"


@main_group.group("phish")
def phish_group() -> None:
    """Reported phishing: sweep a message's copies into the quarantine, list the reports."""


@phish_group.command("sweep")
@config_option
@click.option("--message", "message_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="the phishing message (.eml), as received")
@click.option("--dry-run", is_flag=True, help="list the copies that match, move nothing")
@click.option("--reason", default="", help="why (kept in the audit log)")
@handle_errors
def sweep_cmd(config_path: Path | None, message_file: Path, dry_run: bool, reason: str) -> None:
    """Move the copies of a message still in users' mailboxes (same Message-ID, same sender and subject, or
    the same link) into the quarantine, each audited. Searches `phish_report.match_window_days` of mail."""
    from mailbastion.apps.phish_report import build_phish_reports

    settings = load(config_path)
    raw = message_file.read_bytes()
    reports = build_phish_reports(settings)
    if dry_run:
        copies = reports.find_copies([raw])
        for c in copies:
            click.echo(f"{c.mailbox}\t{c.folder}\t{c.reason}\t{c.sender}\t{c.subject}")
        click.echo(f"{len(copies)} copy/copies match (dry run: nothing moved)")
        return
    outcome = asyncio.run(reports.sweep_by_hand([raw], actor=_actor(), reason=reason))
    for m in outcome.moved:
        click.echo(f"{m.mailbox}\t{m.folder}\t{m.match}\tquarantine {m.quarantine_id}")
    more = f"; {outcome.matched - len(outcome.moved)} more matched (phish_report.max_copies)" if outcome.truncated else ""
    click.echo(f"{len(outcome.moved)} copy/copies moved to the quarantine{more} (audit: phish.sweep {outcome.report_id})")
    if outcome.errors:
        raise Failed("; ".join(outcome.errors[:5]))


@phish_group.command("reports")
@config_option
@click.option("--days", type=click.IntRange(1, 3650), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def reports_cmd(config_path: Path | None, days: int, as_json: bool) -> None:
    """Phishing reports (and sweeps by hand) of the last N days, newest first, from the audit log."""
    from mailbastion.audit import AuditLog
    from mailbastion.phish_report.service import AUDIT_SUBJECT

    settings = load(config_path)
    audit = AuditLog(settings.audit_url)
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat()
    events = [e for e in audit.events(limit=None, subject=AUDIT_SUBJECT) if e.time >= since]
    if as_json:
        click.echo(json.dumps([{"time": e.time, "action": e.action, "actor": e.actor, "reason": e.reason,
                                **dict(e.details)} for e in events], indent=2))
        return
    if not events:
        click.echo(f"no phishing report in the last {days} day(s)")
        return
    for e in events:
        d = dict(e.details)
        subjects = "; ".join(str(m.get("subject", "")) for m in d.get("messages", [])) or "(nothing inside)"
        handled = f" handled by {', '.join(d['handled_by'])}" if d.get("handled_by") else ""
        click.echo(f"{e.time[:19]}Z  {e.action:<11} {e.actor}  moved={len(d.get('moved', []))} "
                   f"learned={d.get('learned', 0)}{handled}  {subjects[:100]}")
