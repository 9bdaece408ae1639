"""`mailbastion reports dmarc|tls|tls-send`: the reports others send us, and the TLS reports we send.

    mailbastion reports dmarc [--days 7] [--domain D] [--json]   DMARC aggregate reports received at
                                                                 dmarc-reports@ (the reports@ Maildir)
    mailbastion reports tls [--days 7] [--domain D] [--json]     TLS-RPT reports received at tls-reports@
    mailbastion reports tls-send [--day YYYY-MM-DD]              our RFC 8460 reports for a finished day
                                                                 (default: every day not sent yet)

Reading needs the mailbox root (the internal host). Sending needs the TLS-RPT database (the gateway,
where outbound sessions are recorded); mailto: reports are committed to the spool, from which the queue
manager delivers them. Exit code 1 when a report could not be read or sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group, valid_domain
from mailbastion.config import Settings


@main_group.group("reports")
def reports_group() -> None:
    """DMARC and TLS-RPT reports: read what others send us, send ours."""


def _maildirs(settings: Settings, domain: str | None) -> list[Path]:
    from mailbastion.reports.summary import report_maildirs

    root = settings.path(settings.mailbox.root)
    dirs = report_maildirs(root, [valid_domain(domain)] if domain else None)
    if not dirs:
        where = root / (valid_domain(domain) if domain else "*") / "reports"
        raise Failed(f"no report mailbox at {where} (reports@DOMAIN is made by `mailbastion domain add`)")
    return dirs


def _problems(problems: list[tuple[str, str]]) -> None:
    for path, why in problems:
        click.echo(f"mailbastion: skipped {path}: {why}", err=True)


def _window(days: int) -> str:
    return f"last {days} day{'s' if days != 1 else ''}"


@reports_group.command("dmarc")
@config_option
@click.option("--days", type=click.IntRange(1, 3660), default=7, show_default=True, help="report periods ending within")
@click.option("--domain", help="only this domain's report mailbox")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@handle_errors
def dmarc_cmd(config_path: Path | None, days: int, domain: str | None, as_json: bool) -> None:
    """DMARC aggregate reports: per source IP and From domain, SPF/DKIM alignment and the receivers' action."""
    from mailbastion.reports.summary import read_reports, summarise_dmarc

    found = read_reports(_maildirs(load(config_path), domain), days=days)
    summary = summarise_dmarc(found.dmarc)
    if as_json:
        click.echo(json.dumps({**summary, "problems": [{"file": f, "error": e} for f, e in found.problems]},
                              indent=2))
    else:
        click.echo(f"DMARC aggregate reports, {_window(days)}: {summary['reports']} reports, "
                   f"{summary['messages']} messages")
        for dom, pol in dict(summary["policies"]).items():  # type: ignore[call-overload]
            click.echo(f"  published for {dom}: {pol}")
        click.echo(f"{'source IP':<40} {'From domain':<28} {'msgs':>6} {'SPF al.':>7} {'DKIM al.':>8} "
                   f"{'DMARC':>9}  applied")
        for s in summary["sources"]:  # type: ignore[attr-defined]
            applied = ", ".join(f"{k} {v}" for k, v in s["disposition"].items())
            verdict = f"{s['dmarc_fail']} FAIL" if s["dmarc_fail"] else f"{s['dmarc_pass']} ok"
            click.echo(f"{s['source_ip']:<40} {s['header_from']:<28} {s['messages']:>6} {s['spf_aligned']:>7} "
                       f"{s['dkim_aligned']:>8} {verdict:>9}  {applied}")
    _problems(found.problems)
    if found.problems:
        raise Failed(f"{len(found.problems)} report(s) could not be read")


@reports_group.command("tls")
@config_option
@click.option("--days", type=click.IntRange(1, 3660), default=7, show_default=True, help="report periods ending within")
@click.option("--domain", help="only this domain's report mailbox")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@handle_errors
def tls_cmd(config_path: Path | None, days: int, domain: str | None, as_json: bool) -> None:
    """TLS-RPT reports others sent us: sessions per policy domain, failures per sending MTA."""
    from mailbastion.reports.summary import read_reports, summarise_tls

    found = read_reports(_maildirs(load(config_path), domain), days=days)
    summary = summarise_tls(found.tls)
    if as_json:
        click.echo(json.dumps({**summary, "problems": [{"file": f, "error": e} for f, e in found.problems]},
                              indent=2))
    else:
        click.echo(f"TLS-RPT reports, {_window(days)}: {summary['reports']} reports")
        for dom, counts in dict(summary["policy_domains"]).items():  # type: ignore[call-overload]
            click.echo(f"  {dom}: {counts['successes']} sessions succeeded, {counts['failures']} failed")
        if summary["sending_mtas"]:
            click.echo(f"{'reporter':<28} {'sending MTA':<40} {'failed':>6}  result types")
        for s in summary["sending_mtas"]:  # type: ignore[attr-defined]
            kinds = ", ".join(f"{k} {v}" for k, v in s["result_types"].items())
            click.echo(f"{s['reporter'][:28]:<28} {s['sending_ip']:<40} {s['failures']:>6}  {kinds}")
    _problems(found.problems)
    if found.problems:
        raise Failed(f"{len(found.problems)} report(s) could not be read")


@reports_group.command("tls-send")
@config_option
@click.option("--day", help="UTC day YYYY-MM-DD (default: every finished day not sent yet)")
@handle_errors
def tls_send_cmd(config_path: Path | None, day: str | None) -> None:
    """Send our TLS-RPT reports (RFC 8460) to each destination's rua: mailto: through the spool, https: POST."""
    from mailbastion.apps.features import make_resolver
    from mailbastion.core.address import parse_address
    from mailbastion.core.envelope import Envelope
    from mailbastion.outbound.tlsrpt_report import TlsReportTask, sender_from_settings
    from mailbastion.outbound.tlsrpt_store import TlsRptStore, utc_day
    from mailbastion.spool.writer import Spool

    settings = load(config_path)
    if not settings.outbound.tls_rpt:
        raise Failed("TLS-RPT is off ([outbound] tls_rpt = false)")
    if day is not None:
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise Failed(f"--day {day!r} is not YYYY-MM-DD") from None
        if day >= utc_day():
            raise Failed(f"{day} is not over yet (UTC): reports cover whole days")
    spool = Spool.from_settings(settings)

    async def mail(sender: str, rcpts: list[str], message: bytes) -> None:
        envelope = Envelope(parse_address(sender), tuple(parse_address(r) for r in rcpts))
        await spool.commit(envelope, message, client="tls-rpt")

    store = TlsRptStore(settings.path(settings.outbound.tls_rpt_db))
    sender = sender_from_settings(settings, store, make_resolver(settings), mail)

    async def run() -> list:  # type: ignore[type-arg]
        if day is not None:
            return await sender.send_day(day)
        return await TlsReportTask(sender, keep_days=settings.outbound.tls_rpt_keep_days).run_once()

    results = asyncio.run(run())
    for r in results:
        click.echo(f"{'sent' if r.ok else 'FAILED'} {r.domain} -> {r.rua}: {r.detail}")
    if not results:
        click.echo("no report to send")
    failed = [r for r in results if not r.ok]
    if failed:
        raise Failed(f"{len(failed)} report(s) not sent; run again later")


__all__ = ["reports_group"]
