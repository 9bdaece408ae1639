"""`mailbastion account leave | start` and `mailbastion people import`: accounts over time (issue 13).

    mailbastion account leave bob@example.org --on 2026-12-31 --successor carol@example.org --reason HR-12
    mailbastion account start dan@example.org --on 2027-01-04 --reason HR-13
    mailbastion people import staff.csv --dry-run        # the difference only
    mailbastion people import staff.csv --reason "HR export 2026-12-02"

The dates are applied on time by the internal role's scheduler (lifecycle/scheduler.py); a date that has
already passed is applied at once by the command. `account show` (cli/directory.py) displays them. This
module adds commands to the `account` group (importing cli/portal.py, which imports cli/directory.py, so
every `account` command is there) and the `people` group. Every change is audited with `--by`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.cli.directory import account_group, by_option, directory_errors
from mailbastion.cli.portal import enrol_link as _enrol_link  # noqa: F401 - registers the portal's commands


def parse_when(text: str) -> dt.datetime:
    """`now`, YYYY-MM-DD, or ISO 8601 date and time (UTC when no zone is given)."""
    if text.strip().lower() == "now":
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][+zone] or now)") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _open(config_path: Path | None):  # type: ignore[no-untyped-def]
    from mailbastion.directory.store import Directory
    from mailbastion.lifecycle.transitions import LifecyclePolicy

    settings = load(config_path)
    return settings, Directory.from_settings(settings), LifecyclePolicy.from_settings(settings)


@account_group.command("leave")
@click.argument("address")
@click.option("--on", "on", required=True, help="the end date: YYYY-MM-DD[THH:MM[:SS]] (UTC) or now")
@click.option("--successor", default=None, help="who takes over: named in refusals, or forwarded to")
@click.option("--reason", required=True, help="why, e.g. the leaver ticket (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def account_leave(address: str, on: str, successor: str | None, reason: str, by: str, config_path: Path | None) -> None:
    """ADDRESS leaves on --on: from then on it cannot log in, its devices and sessions end, and its mail is
    refused naming --successor (or forwarded to it: [lifecycle] leaver_policy)."""
    from mailbastion.lifecycle.dates import KEEP, set_dates
    from mailbastion.lifecycle.transitions import leave

    settings, directory, policy = _open(config_path)
    when = parse_when(on) if on.strip().lower() != "now" else directory.now()
    set_dates(directory, address, end_at=when, successor=successor if successor is not None else KEEP, by=by,
              reason=reason)
    info = directory.account(address)
    assert info is not None
    lc = settings.lifecycle
    then = (f"forwarded to {info.successor} for {lc.forward_days} days, then refused"
            if lc.leaver_policy == "forward" and info.successor else
            "refused (550 5.1.1)" + (f" naming {info.successor}" if info.successor else ""))
    if when <= directory.now():
        done = leave(directory, info.address, policy, by=by, reason=reason)
        click.echo(f"account {info.address} has left ({when:%Y-%m-%d %H:%M} UTC); its mail is {then}")
        for alias in done.details.get("aliases_repointed", []):
            click.echo(f"  alias {alias} now points at {info.successor}")
        for alias in done.details.get("aliases_reported", []):
            click.echo(f"  alias {alias} still points at {info.address}: point it elsewhere or remove it")
        return
    click.echo(f"account {info.address} leaves on {when:%Y-%m-%d %H:%M} UTC; its mail will then be {then}")


@account_group.command("start")
@click.argument("address")
@click.option("--on", "on", required=True, help="the start date: YYYY-MM-DD[THH:MM[:SS]] (UTC)")
@click.option("--reason", required=True, help="why, e.g. the joiner ticket (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def account_start(address: str, on: str, reason: str, by: str, config_path: Path | None) -> None:
    """ADDRESS starts on --on: pending (no mail, no login) until then, active from then."""
    from mailbastion.lifecycle.dates import set_dates
    from mailbastion.lifecycle.transitions import start

    _, directory, _ = _open(config_path)
    when = parse_when(on)
    set_dates(directory, address, start_at=when, by=by, reason=reason)
    info = directory.account(address)
    assert info is not None
    if when <= directory.now() and info.state.value == "pending":
        start(directory, info.address, by=by)
        click.echo(f"account {info.address} started ({when:%Y-%m-%d %H:%M} UTC): active")
        return
    click.echo(f"account {info.address} starts on {when:%Y-%m-%d %H:%M} UTC ({info.state.value} until then)")


@main_group.group("people")
def people_group() -> None:
    """People from HR: joiners, changes and leavers from an export."""


@people_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="print the difference only; change nothing")
@click.option("--reason", default="people import", show_default=True, help="recorded in the audit log")
@by_option
@config_option
@directory_errors
def people_import(file: Path, dry_run: bool, reason: str, by: str, config_path: Path | None) -> None:
    """Compare FILE (CSV: address, name, start, end, manager, groups) with the directory, print the
    difference, then (without --dry-run) apply its joins, changes and leaves. Joiners get a one-time
    enrolment link, never a password."""
    from mailbastion.lifecycle.people import PeopleFileError, apply_import, plan_import, read_people

    settings, directory, policy = _open(config_path)
    try:
        plan = plan_import(directory, read_people(file))
    except PeopleFileError as exc:
        raise Failed(str(exc)) from None
    for line in plan.lines():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing changed")
        return
    done = apply_import(directory, plan, policy, by=by, reason=reason)
    click.echo(f"applied: {len(done.joined)} joined, {len(done.changed)} changed, {len(done.left)} left")
    if done.joined:
        from mailbastion.directory.portal import PortalStore
        from mailbastion.portal.context import make_enrol_link

        store = PortalStore(directory)
        click.echo(f"enrolment links (each works once, for {settings.portal.enrol_link_hours} hours; hand them "
                   "over through a channel you trust):")
        for address in done.joined:
            click.echo(f"  {address} {make_enrol_link(settings, store, address, by=by, reason=reason)}")
