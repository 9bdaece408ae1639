"""`mailbastion audit [--json | --html FILE] [--mail-changes]`: the ten measures checked live, with evidence.

Exit code 1 when a measure fails ("not built" is not a failure: it is said, never passed); 3 when
--mail-changes could not mail (a daily timer's unit counts 1 as success: the mail reports it). The live probes
send EICAR, GTUBE, a relay attempt and smuggling probes through this host's MX listener (all refused when
the measures hold), and handshake every TLS listener; see README.md (the ten measures) and docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group

MAIL_EXIT = 3  # --mail-changes could not mail: distinct from 1 (a measure fails), for the timer's unit


class MailFailed(Failed):
    exit_code = MAIL_EXIT


def _write(path: Path, text: str, *, owner_of: Path | None = None) -> None:
    """Write `path` whole (a temporary file renamed). `owner_of`: run as root (the daily timer), give new
    folders and the file to the owner of that folder (data_dir: the service user must still write there)."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    if owner_of is not None and os.geteuid() == 0:
        st = owner_of.stat()
        for p in [*missing, path]:
            if p == owner_of or owner_of in p.parents:
                os.chown(p, st.st_uid, st.st_gid)


def _mail_changes(settings: Any, doc: dict[str, Any], when: str) -> str:
    """Mail postmaster what changed since the last run, through our own MX listener; returns a line to print."""
    from mailbastion.measures.inventory import MAILED_FILE, mail_target
    from mailbastion.measures.report import changes
    from mailbastion.measures.smtp_probe import HELO

    state = settings.path(MAILED_FILE)
    try:
        before = json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        before = None
    except (OSError, ValueError) as exc:
        raise Failed(f"cannot read the last audit {state}: {exc}") from None
    lines = changes(before, doc)
    if not lines:
        _write(state, json.dumps(doc, indent=1), owner_of=settings.path("."))
        return "audit: nothing changed since the last run; no mail"
    from mailbastion.directory.recipient_map import read_map

    domains = sorted(read_map(settings.path(settings.directory.recipient_map)).domains)
    target, why = mail_target(settings, domains)
    if target is None:
        raise MailFailed(f"cannot mail the changes: {why}")
    msg = EmailMessage()
    # From a .invalid address on purpose: mail From one of our domains without a DKIM signature would be
    # refused by our own MX once DMARC is at p=reject (measure 10), and this mail comes in like any other.
    msg["From"] = "mailbastion audit <audit@audit-probe.invalid>"
    msg["To"] = target.recipient
    msg["Subject"] = f"mailbastion audit {settings.server.hostname}: {len(lines)} change(s)"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=settings.server.hostname)
    failing = [m for m in doc["measures"] if m["status"] == "fail"]
    body = [f"What changed since the last audit of {settings.server.hostname} ({when}):", "", *lines, ""]
    body += [f"Failing now: {', '.join(str(m['id']) for m in failing) or 'none'}.",
             "Details: `mailbastion audit` (or --html FILE for the one-page report)."]
    msg.set_content("\n".join(body) + "\n")
    try:
        with smtplib.SMTP(target.host, target.port, local_hostname=HELO.decode(), timeout=60) as s:
            s.send_message(msg, from_addr="", to_addrs=[target.recipient])
    except (OSError, smtplib.SMTPException) as exc:
        raise MailFailed(f"could not mail the audit's changes to {target.recipient}: {exc}") from None
    _write(state, json.dumps(doc, indent=1), owner_of=settings.path("."))  # only once the mail was taken: a failed mail is tried again
    return f"audit: {len(lines)} change(s) mailed to {target.recipient}"


@main_group.command("audit")
@config_option
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write a one-page HTML report for management to FILE")
@click.option("--mail-changes", is_flag=True, help="mail postmaster what changed since the last run (daily timer)")
@handle_errors
def audit_cmd(config_path: Path | None, as_json: bool, html_file: Path | None, mail_changes: bool) -> None:
    """Check the ten measures live: EICAR and GTUBE through the MX listener, a relay attempt from outside the
    relay networks, smuggling, every listener's TLS, the directory, `av status`, `dns check`.

    Exit code 1 when a measure fails ("not built" measures are reported, never passed); 3 when
    --mail-changes could not mail. Every run leaves its JSON in data_dir/state/audit-last.json (the portal's
    dashboard shows measures 3, 4 and 5 from it)."""
    from mailbastion.measures.inventory import LAST_FILE, audit_board
    from mailbastion.measures.report import failed, report_html, report_json

    settings = load(config_path)

    async def run() -> dict[int, Any]:
        board = await audit_board(settings)
        return await board.refresh()

    results = asyncio.run(run())
    doc = report_json(results)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    _write(settings.path(LAST_FILE), json.dumps({**doc, "checked_at": when, "host": settings.server.hostname},
                                                indent=1),
           owner_of=settings.path("."))  # what the portal's dashboard shows for 3, 4, 5
    if html_file is not None:
        _write(html_file, report_html(doc, host=settings.server.hostname, when=when))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        for m in doc["measures"]:
            click.echo(f"{m['id']:>2}. {m['name']}: {m['status'].upper()}: {m['evidence'][0]}")
            for e in m["evidence"][1:]:
                click.echo(f"      {e}")
            if m["fix"]:
                click.echo(f"      what to do: {m['fix']}")
    if mail_changes:
        click.echo(_mail_changes(settings, doc, when), err=as_json)
    bad = failed(doc)
    if bad:
        if not as_json:
            click.echo(f"audit: measure(s) {', '.join(map(str, bad))} fail", err=True)
        raise SystemExit(1)
