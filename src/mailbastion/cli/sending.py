"""`mailbastion account send-as | unsuspend | sending`: who may send as whom, and sending suspended for a
hijacked account (directory/sending.py).

    mailbastion account send-as alice@example.org --grant sales@example.org --reason "team mailbox"
    mailbastion account send-as alice@example.org --revoke sales@example.org --reason "left the team"
    mailbastion account send-as alice@example.org                  # what she may send as
    mailbastion account sending                                    # accounts whose sending is suspended
    mailbastion account unsuspend alice@example.org --reason "password reset after phishing"

This module adds commands to the `account` group (cli/portal.py, which itself extends cli/directory.py, is
imported first so every `account` command is there). Every change is audited with `--by`. A running server
sees a grant or an unsuspension at the next transaction (it reads the directory each time).
"""

from __future__ import annotations

from pathlib import Path

import click

from mailbastion.cli import portal as _portal  # noqa: F401 - the `account` commands of the portal
from mailbastion.cli._common import Failed, config_option
from mailbastion.cli.directory import account_group, by_option, directory_errors, open_directory


@account_group.command("send-as")
@click.argument("address")
@click.option("--grant", "grant", metavar="FROM", default=None, help="let ADDRESS send as FROM")
@click.option("--revoke", "revoke", metavar="FROM", default=None, help="take the grant to send as FROM back")
@click.option("--reason", default="", help="why (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def send_as(address: str, grant: str | None, revoke: str | None, reason: str, by: str,
            config_path: Path | None) -> None:
    """Explicit send-as grants (besides the account itself and its aliases)."""
    from mailbastion.directory.sending import GrantUnknown, SendingStore

    if grant and revoke:
        raise Failed("give --grant or --revoke, not both")
    store = SendingStore(open_directory(config_path))
    if grant:
        store.grant(address, grant, by=by, reason=reason)
        click.echo(f"{address} may now send as {grant}")
    elif revoke:
        try:
            store.revoke(address, revoke, by=by, reason=reason)
        except GrantUnknown as exc:
            raise Failed(str(exc)) from None
        click.echo(f"{address} may no longer send as {revoke}")
    senders = sorted(store.allowed_senders(address))
    click.echo(f"{address} may send as: {', '.join(senders)}")


@account_group.command("unsuspend")
@click.argument("address")
@click.option("--reason", required=True, help="why sending may resume (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def unsuspend(address: str, reason: str, by: str, config_path: Path | None) -> None:
    """Lift the sending suspension of a (suspected) hijacked account."""
    from mailbastion.directory.sending import NotSuspended, SendingStore

    try:
        held = SendingStore(open_directory(config_path)).unsuspend(address, reason=reason, by=by)
    except NotSuspended as exc:
        raise Failed(str(exc)) from None
    click.echo(f"sending resumed for {held.account} (suspended since {held.since:%Y-%m-%d %H:%M} UTC: {held.reason})")


@account_group.command("sending")
@config_option
@directory_errors
def sending(config_path: Path | None) -> None:
    """Accounts whose sending is suspended, with why."""
    from mailbastion.directory.sending import SendingStore

    holds = SendingStore(open_directory(config_path)).holds()
    if not holds:
        click.echo("no account has sending suspended")
    for h in holds:
        click.echo(f"{h.account}  since {h.since:%Y-%m-%d %H:%M} UTC by {h.by}: {h.reason}")
