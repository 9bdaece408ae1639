"""`mailbastion domain …`, `mailbastion account …`: the directory from the command line.

Every change is audited with the actor `cli:<login name>` (or `--by`) and the given `--reason`; a generated
password is printed once and never again.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group
from mailbastion.config import Settings
from mailbastion.directory.models import AccountState
from mailbastion.directory.resolution import to_address
from mailbastion.directory.store import Directory

F = TypeVar("F", bound=Callable[..., Any])


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def directory_errors(fn: F) -> F:
    """Our errors and database errors as one line and exit 1 (no traceback)."""

    @functools.wraps(fn)
    @handle_errors
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SQLAlchemyError as exc:
            raise Failed(f"directory database error: {str(exc).splitlines()[0]}") from None
        except ValueError as exc:
            raise Failed(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def open_directory(config_path: Path | None) -> Directory:
    return Directory.from_settings(load(config_path))


by_option = click.option("--by", default=_default_actor, show_default="cli:<login name>",
                         help="who makes the change (recorded in the audit log)")


@main_group.group("domain")
def domain_group() -> None:
    """Our mail domains."""


@domain_group.command("add")
@click.argument("domain")
@click.option("--reason", default="", help="why (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def domain_add(domain: str, reason: str, by: str, config_path: Path | None) -> None:
    """Add DOMAIN to the domains we receive mail for, with the reports mailbox and the DKIM keys that
    `mailbastion dns records DOMAIN` then publishes."""
    from mailbastion.apps.bootstrap import provision_domain

    settings = load(config_path)
    setup = provision_domain(settings, Directory.from_settings(settings), domain, by=by, reason=reason)
    click.echo(f"domain {setup.domain} added")
    for line in setup.describe():
        click.echo(line)


@domain_group.command("list")
@config_option
@directory_errors
def domain_list(config_path: Path | None) -> None:
    """List our domains."""
    for name in open_directory(config_path).list_domains():
        click.echo(name)


@main_group.group("account")
def account_group() -> None:
    """Mail accounts: joiners, leavers, aliases."""


@account_group.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input (first line)")
@click.option("--reason", default="", help="why, e.g. the joiner ticket (recorded in the audit log)")
@click.option("--quota", "quota_bytes", type=click.IntRange(min=0), default=None,
              help="mailbox quota in bytes (default: mailbox.default_quota_bytes; 0 = unlimited)")
@click.option("--pending", is_flag=True, help="create it pending (inactive) until approved")
@click.option("--start", "start", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
              default=None, help="start date (UTC): pending until then, then active (the lifecycle scheduler)")
@click.option("--end", "end", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
              default=None, help="end date (UTC): the account leaves then (see `account leave`)")
@by_option
@config_option
@directory_errors
def account_add(address: str, password_stdin: bool, reason: str, quota_bytes: int | None, pending: bool,
                start: dt.datetime | None, end: dt.datetime | None, by: str, config_path: Path | None) -> None:
    """Create the account ADDRESS. Without --password-stdin a strong password is generated and shown once.
    The address of a deleted account can be given again only after its reservation ends."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise Failed("no password on standard input")
    state = AccountState.PENDING if pending else AccountState.ACTIVE
    settings = load(config_path)
    directory = Directory.from_settings(settings)
    begins, ends = (v.replace(tzinfo=dt.UTC) if v else None for v in (start, end))
    if begins and ends and ends <= begins:
        raise Failed("--end must be after --start")
    generated = directory.add_account(address, password, by, reason, state=state, quota_bytes=quota_bytes,
                                      start_at=begins, end_at=ends)
    _create_folders(settings, address)
    info = directory.account(address)
    click.echo(f"account {address} added ({info.state if info else state})"
               + (f", starts {_date(begins)}" if begins else "") + (f", leaves {_date(ends)}" if ends else ""))
    if generated is not None:
        click.echo(f"password (shown once, store it now): {generated}")


def _create_folders(settings: Settings, address: str) -> None:
    """INBOX, Junk, Sent, Drafts, Trash and Archive on disk from the start (imap/folders.py). A failure here
    leaves the account as it is: the MDA and IMAP create the folders at first use anyway."""
    from mailbastion.imap.folders import create_folders, standard_folders
    from mailbastion.mailbox.maildir import MaildirStore

    store = MaildirStore(settings.path(settings.mailbox.root), junk_folder=settings.mailbox.junk_folder)
    try:
        create_folders(store, to_address(address), [name for name, _ in standard_folders(settings)])
    except OSError as exc:
        click.echo(f"note: the mail folders of {address} will be made at first use ({exc})", err=True)


def _date(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@account_group.command("list")
@click.option("--domain", default=None, help="only this domain")
@click.option("--state", type=click.Choice([s.value for s in AccountState]), default=None, help="only this state")
@config_option
@directory_errors
def account_list(domain: str | None, state: str | None, config_path: Path | None) -> None:
    """List accounts with their state and dates, then the aliases whose target cannot receive."""
    directory = open_directory(config_path)
    accounts = directory.list_accounts(domain=domain, state=AccountState(state) if state else None)
    click.echo(f"{'ADDRESS':40} {'STATE':10} {'ACTIVATED':16} {'LEAVES':16} {'DEACTIVATED':16} QUOTA")
    for a in accounts:
        quota = "default" if a.quota_bytes is None else str(a.quota_bytes)
        click.echo(f"{a.address:40} {a.state.value:10} {_date(a.activated_at):16} {_date(a.deactivate_at):16} "
                   f"{_date(a.deactivated_at):16} {quota}")
    _report_dead_aliases(directory, domain=domain)


def _report_dead_aliases(directory: Directory, *, domain: str | None = None, target: str | None = None) -> None:
    """Aliases with a target that cannot receive (its mail is refused, or lost for that target)."""
    dead = [d for d in directory.dead_aliases(domain=domain) if target is None or d.target == target]
    if not dead:
        return
    click.echo("")
    click.echo(f"aliases whose target cannot receive ({len(dead)}): remove them or point them elsewhere")
    for d in dead:
        click.echo(f"  {d.alias} -> {d.target}: {d.why}")


@account_group.command("deactivate")
@click.argument("address")
@click.option("--reason", required=True, help="why, e.g. the leaver ticket (recorded in the audit log)")
@click.option("--at", "at", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"]), default=None,
              help="leaver date (UTC); default: now")
@by_option
@config_option
@directory_errors
def account_deactivate(address: str, reason: str, at: dt.datetime | None, by: str, config_path: Path | None) -> None:
    """Deactivate ADDRESS: it stops receiving and logging in (now, or from --at)."""
    when = at.replace(tzinfo=dt.UTC) if at else None
    settings = load(config_path)
    directory = Directory.from_settings(settings)
    info = directory.account(address)
    if (when is None or when <= directory.now()) and info is not None \
            and info.state in (AccountState.ACTIVE, AccountState.SUSPENDED):
        from mailbastion.lifecycle.transitions import LifecyclePolicy, leave

        # the whole leave (devices, sessions, aliases to the successor, forwarding): lifecycle/transitions.py
        leave(directory, info.address, LifecyclePolicy.from_settings(settings), by=by, reason=reason)
    else:
        directory.deactivate(address, by, reason, at=when)
    click.echo(f"account {address} " + (f"will be deactivated at {when.isoformat()}" if when and
                                         when > dt.datetime.now(dt.UTC) else "deactivated"))
    _report_dead_aliases(directory, target=to_address(address).normalized)


@account_group.command("state")
@click.argument("address")
@click.argument("state", type=click.Choice([s.value for s in AccountState]))
@click.option("--reason", required=True, help="why, e.g. the approval or ticket (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def account_state(address: str, state: str, reason: str, by: str, config_path: Path | None) -> None:
    """Set the state of ADDRESS (approve a pending account with `active`, suspend, disable, delete)."""
    open_directory(config_path).set_state(address, AccountState(state), by, reason)
    click.echo(f"account {address} is now {state}")


@account_group.command("password")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="read the new password from standard input (first line)")
@click.option("--reason", default="", help="recorded in the audit log")
@by_option
@config_option
@directory_errors
def account_password(address: str, password_stdin: bool, reason: str, by: str, config_path: Path | None) -> None:
    """Replace the password of ADDRESS (a generated one is shown once)."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    if password_stdin and not password:
        raise Failed("no password on standard input")
    generated = open_directory(config_path).set_password(address, password, by, reason)
    click.echo(f"password of {address} changed")
    if generated is not None:
        click.echo(f"password (shown once, store it now): {generated}")


@account_group.group("alias")
def alias_group() -> None:
    """Aliases: an address of ours that delivers to other addresses."""


@alias_group.command("add")
@click.argument("alias")
@click.argument("target")
@click.option("--reason", default="", help="recorded in the audit log")
@by_option
@config_option
@directory_errors
def alias_add(alias: str, target: str, reason: str, by: str, config_path: Path | None) -> None:
    """Deliver mail for ALIAS to TARGET (repeat for several targets). A TARGET of ours must be able to
    receive: an active account, or an alias that reaches one."""
    open_directory(config_path).add_alias(alias, target, by, reason)
    click.echo(f"alias {alias} -> {target} added")


@alias_group.command("remove")
@click.argument("alias")
@click.argument("target", required=False)
@click.option("--reason", default="", help="recorded in the audit log")
@by_option
@config_option
@directory_errors
def alias_remove(alias: str, target: str | None, reason: str, by: str, config_path: Path | None) -> None:
    """Remove ALIAS (or only its TARGET)."""
    open_directory(config_path).remove_alias(alias, target, by, reason)
    click.echo(f"alias {alias} removed" + (f" (target {target})" if target else ""))


@alias_group.command("list")
@config_option
@directory_errors
def alias_list(config_path: Path | None) -> None:
    """List aliases and their targets."""
    for alias, target in open_directory(config_path).list_aliases():
        click.echo(f"{alias} -> {target}")


# -- app passwords and client settings (IMAP, and submission with issue 10) --------------------------------


@account_group.group("app-password")
def app_password_group() -> None:
    """Passwords per device, so that mail clients never hold the account's main password."""


@app_password_group.command("create")
@click.argument("address")
@click.option("--name", "name", required=True, help="the device, e.g. 'phone' or 'laptop thunderbird'")
@click.option("--reason", default="", help="recorded in the audit log")
@by_option
@config_option
@directory_errors
def app_password_create(address: str, name: str, reason: str, by: str, config_path: Path | None) -> None:
    """Create an app password for ADDRESS on the device --name; it is shown once, only its hash is kept."""
    created = open_directory(config_path).add_app_password(address, name, by, reason)
    click.echo(f"app password {created.info.name!r} of {to_address(address).normalized} created")
    click.echo(f"app password (shown once, type it into the device now): {created.secret}")


@app_password_group.command("list")
@click.argument("address")
@config_option
@directory_errors
def app_password_list(address: str, config_path: Path | None) -> None:
    """List the app passwords of ADDRESS (names and dates; secrets are never kept)."""
    items = open_directory(config_path).list_app_passwords(address)
    if not items:
        click.echo(f"{to_address(address).normalized} has no app passwords")
        return
    click.echo(f"{'DEVICE':32} {'CREATED':16} LAST USED")
    for item in items:
        click.echo(f"{item.name:32} {_date(item.created_at):16} {_date(item.last_used_at) if item.last_used_at else 'never'}")


@app_password_group.command("revoke")
@click.argument("address")
@click.option("--name", "name", default=None, help="the device to revoke")
@click.option("--all", "revoke_all", is_flag=True, help="revoke every app password of ADDRESS")
@click.option("--reason", default="", help="recorded in the audit log")
@by_option
@config_option
@directory_errors
def app_password_revoke(address: str, name: str | None, revoke_all: bool, reason: str, by: str,
                        config_path: Path | None) -> None:
    """Revoke the app password --name of ADDRESS (or --all): that device can no longer log in."""
    if (name is None) == (not revoke_all):
        raise click.UsageError("give --name DEVICE or --all")
    names = open_directory(config_path).revoke_app_password(address, name, by, reason)
    click.echo(f"revoked: {', '.join(names)}")


def _show_lifecycle(settings: Settings, directory: Directory, info: Any) -> None:
    """The lifecycle lines of `account show` (issue 13): successor and what its mail gets, manager, archive,
    reservation, and the aliases that still point at an account that cannot receive."""
    lc = settings.lifecycle
    if info.successor:
        policy = (f"forwarded for {lc.forward_days} days after leaving, then refused naming it"
                  if lc.leaver_policy == "forward" else "refused (550 5.1.1) naming it")
        click.echo(f"successor      {info.successor} (after leaving, mail is {policy})")
    else:
        click.echo("successor      -")
    if info.manager:
        click.echo(f"manager        {info.manager}")
    if info.archived_at:
        click.echo(f"archived       {_date(info.archived_at)} {info.archive_file or ''}")
    if info.state == AccountState.DELETED:
        click.echo(f"reserved until {_date(info.reserved_until)} (the address cannot be given to a new account "
                   "before)")
    if not info.is_active:
        pointing = [a for a, t in directory.list_aliases() if t == info.address]
        if pointing:
            click.echo(f"aliases        still pointing here, refused or lost: {', '.join(pointing)}")


@account_group.command("show")
@click.argument("address")
@config_option
@directory_errors
def account_show(address: str, config_path: Path | None) -> None:
    """Show ADDRESS: state, dates, quota and use, app passwords, and the settings for its mail clients."""
    from mailbastion.imap.client_setup import client_settings
    from mailbastion.mailbox.maildir import MaildirStore
    from mailbastion.mailbox.quota import read_usage, scan_usage

    settings = load(config_path)
    directory = Directory.from_settings(settings)
    info = directory.account(address)
    if info is None:
        raise Failed(f"no account {to_address(address).normalized}")
    store = MaildirStore(settings.path(settings.mailbox.root), junk_folder=settings.mailbox.junk_folder)
    box = store.mailbox_dir(to_address(info.address))
    used = (read_usage(box) or scan_usage(box)) if box.exists() else (0, 0)
    quota = settings.mailbox.default_quota_bytes if info.quota_bytes is None else info.quota_bytes
    why = "" if info.is_active else "  (cannot receive mail or log in)"
    click.echo(f"account        {info.address}" + (f" ({info.display_name})" if info.display_name else ""))
    click.echo(f"state          {info.state.value}{why}")
    click.echo(f"created        {_date(info.created_at)}")
    click.echo(f"starts         {_date(info.start_at)}")
    click.echo(f"activated      {_date(info.activated_at)}")
    click.echo(f"leaves         {_date(info.deactivate_at)}")
    click.echo(f"deactivated    {_date(info.deactivated_at)}")
    _show_lifecycle(settings, directory, info)
    click.echo(f"quota          {'unlimited' if not quota else f'{quota} bytes'}"
               f"{' (default)' if info.quota_bytes is None else ''}; used "
               + f"{used[0]} bytes in {used[1]} messages")
    devices = directory.list_app_passwords(info.address)
    click.echo(f"app passwords  {len(devices) or 'none'}" + "".join(
        f"\n  {d.name} (created {_date(d.created_at)}, last used "
        f"{_date(d.last_used_at) if d.last_used_at else 'never'})" for d in devices))
    click.echo("")
    click.echo("mail client settings")
    for line in client_settings(settings, info.address).lines():
        click.echo(f"  {line}")
