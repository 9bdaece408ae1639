"""`mailbastion aup`: the acceptable use policy (issue 13, measure 7).

    mailbastion aup template > aup.md                     # the shipped template, to edit
    mailbastion aup publish aup.md --version 2026.1 [--effective 2027-01-04]
    mailbastion aup list                                  # versions: effective date, hash, acceptances
    mailbastion aup show [2026.1] [--raw]                 # --raw: exactly the published text (sha256sum it)
    mailbastion aup report [--csv] [--version 2026.1]     # who accepted, who is due, who is overdue

Users accept in the portal (/aup). Past `[aup] grace_days` an overdue user gets one notice by mail and, with
`[aup] enforce = "submission"`, cannot send until they accept.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.cli.directory import by_option, directory_errors


def _when(text: str, now: dt.datetime) -> dt.datetime:
    """`now`, YYYY-MM-DD (00:00 UTC), or ISO 8601 date and time (UTC when no zone is given)."""
    if text.strip().lower() == "now":
        return now
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise Failed(f"--effective {text!r} is not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][+zone] or now)") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _open(config_path: Path | None):  # type: ignore[no-untyped-def]
    from mailbastion.aup.standing import AupPolicy
    from mailbastion.aup.store import AupStore
    from mailbastion.directory.store import Directory

    settings = load(config_path)
    return settings, AupStore(Directory.from_settings(settings)), AupPolicy.from_settings(settings)


def _t(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@main_group.group("aup")
def aup_group() -> None:
    """The acceptable use policy: versions, acceptances, the report."""


@aup_group.command("template")
@config_option
def aup_template(config_path: Path | None) -> None:
    """Print the shipped template (Markdown): copy it, fill in the [bracketed] parts, publish it."""
    from mailbastion.aup.template import template_text

    click.echo(template_text(), nl=False)


@aup_group.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", "version", required=True, help="the version's name, e.g. 2026.1 (never reused)")
@click.option("--effective", default=None, help="in effect from: YYYY-MM-DD[THH:MM] (UTC) or now (default)")
@click.option("--reason", default="", help="why (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def aup_publish(file: Path, version: str, effective: str | None, reason: str, by: str,
                config_path: Path | None) -> None:
    """Publish the Markdown FILE as VERSION. A published version never changes: publishing it again with
    another text is refused (publish a new version)."""
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise Failed(f"{file}: not UTF-8 text") from None
    settings, store, policy = _open(config_path)
    when = _when(effective, store.now()) if effective else None
    v, new = store.publish(text, version, effective_at=when, by=by, reason=reason)
    if not new:
        click.echo(f"version {v.version} is already published with this text (sha256 {v.sha256}); nothing changed")
        return
    state = "in effect now" if v.in_effect(store.now()) else f"in effect from {_t(v.effective_at)}"
    click.echo(f"published version {v.version} (sha256 {v.sha256}), {state}")
    click.echo(f"every active user accepts it in the portal ({policy.accept_url}) within {settings.aup.grace_days} "
               f"days; then: aup.enforce = {settings.aup.enforce}")


@aup_group.command("list")
@config_option
@directory_errors
def aup_list(config_path: Path | None) -> None:
    """The published versions, which one is in effect, and how many active users accepted each."""
    from mailbastion.aup.standing import State, counts, standings

    _, store, policy = _open(config_path)
    versions = store.versions()
    if not versions:
        click.echo("no version published: `mailbastion aup template > aup.md`, edit it, then "
                   "`mailbastion aup publish aup.md --version 1`")
        return
    now = store.now()
    current = store.current(now)
    click.echo(f"{'VERSION':<12} {'STATUS':<11} {'EFFECTIVE':<21} {'ACCEPTED':<10} {'PUBLISHED BY':<24} SHA256")
    for v in versions:
        status = ("in effect" if current and v.version == current.version else
                  "upcoming" if v.effective_at > now else "superseded")
        rows = standings(store, policy, v, now)
        n = counts(rows)
        accepted = f"{n[State.ACCEPTED]}/{len(rows)}"
        click.echo(f"{v.version:<12} {status:<11} {_t(v.effective_at):<21} {accepted:<10} {v.published_by[:24]:<24} "
                   f"{v.sha256[:16]}")


@aup_group.command("show")
@click.argument("version", required=False)
@click.option("--raw", is_flag=True, help="only the text, byte for byte as published")
@config_option
@directory_errors
def aup_show(version: str | None, raw: bool, config_path: Path | None) -> None:
    """Print VERSION (default: the one in effect, else the latest published)."""
    _, store, _ = _open(config_path)
    v = store.version(version) if version else (store.current() or (store.versions() or [None])[-1])
    if v is None:
        raise Failed(f"no version {version!r}" if version else "no version published")
    if raw:
        sys.stdout.buffer.write(v.text.encode("utf-8"))
        return
    click.echo(f"version {v.version}, in effect from {_t(v.effective_at)}, published {_t(v.published_at)} by "
               f"{v.published_by}\nsha256 {v.sha256}\n")
    click.echo(v.text, nl=not v.text.endswith("\n"))


@aup_group.command("report")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on standard output (one row per active account)")
@click.option("--version", "version", default=None, help="another version than the one in effect")
@config_option
@directory_errors
def aup_report(as_csv: bool, version: str | None, config_path: Path | None) -> None:
    """Who has and has not accepted the version in effect (or --version): accepted, due (inside the grace
    period) or OVERDUE, with when and from where each acceptance came."""
    from mailbastion.aup.standing import State, counts, standings

    settings, store, policy = _open(config_path)
    now = store.now()
    v = store.version(version) if version else store.current(now)
    if v is None:
        if version:
            raise Failed(f"no version {version!r} (`mailbastion aup list`)")
        upcoming = store.upcoming(now)
        hint = (f"; version {upcoming[0].version} takes effect {_t(upcoming[0].effective_at)} (--version "
                f"{upcoming[0].version})" if upcoming else ": publish one with `mailbastion aup publish`")
        if as_csv:
            raise Failed("no version of the acceptable use policy is in effect" + hint)
        click.echo("no version of the acceptable use policy is in effect" + hint)
        return
    rows = standings(store, policy, v, now)
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["address", "version", "state", "overdue", "due_at", "accepted_at", "accepted_sha256",
                      "client", "notified_at"])
        for r in rows:
            a = r.accepted
            out.writerow([r.address, r.version, r.state.value, "yes" if r.state is State.OVERDUE else "no",
                          r.due_at.isoformat(timespec="seconds"), a.accepted_at.isoformat(timespec="seconds") if a else "",
                          a.sha256 if a else "", a.client if a else "",
                          r.notified_at.isoformat(timespec="seconds") if r.notified_at else ""])
        return
    current = store.current(now)
    status = "in effect" if current and current.version == v.version else (
        "upcoming" if v.effective_at > now else f"superseded by {current.version if current else '?'}")
    click.echo(f"acceptable use policy {v.version} ({status} since {_t(v.effective_at)}; sha256 {v.sha256[:16]}); "
               f"grace {settings.aup.grace_days} days; enforce = {settings.aup.enforce}")
    if rows:
        click.echo(f"{'ADDRESS':<36} {'STATE':<9} {'DUE BY':<21} {'ACCEPTED':<21} FROM")
    for r in rows:
        a = r.accepted
        state = "OVERDUE" if r.state is State.OVERDUE else r.state.value
        click.echo(f"{r.address:<36} {state:<9} {_t(r.due_at):<21} {_t(a.accepted_at) if a else '-':<21} "
                   f"{a.client if a else ''}")
    n = counts(rows)
    click.echo(f"{len(rows)} active account(s): {n[State.ACCEPTED]} accepted, {n[State.DUE]} due, "
               f"{n[State.OVERDUE]} overdue")


__all__ = ["aup_group"]
