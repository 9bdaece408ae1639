"""`mailbastion account enrol-link | role | totp-reset ADDRESS` and `mailbastion portal digest`: the portal's
side of accounts, from the command line.

    mailbastion account enrol-link alice@example.org --reason "joiner HR-1234"   # prints a one-time URL
    mailbastion account role alice@example.org administrator --reason "IT lead"  # she enrols TOTP at sign-in
    mailbastion account totp-reset alice@example.org --reason "lost phone"
    mailbastion portal digest                                                   # the quarantine digest, now

This module adds commands to the `account` group of cli/directory.py (which it imports, so `account`'s other
commands are all there). Every change is audited with `--by` (default cli:<login name>).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from mailbastion.cli._common import config_option, handle_errors, load, main_group
from mailbastion.cli.directory import account_group, by_option, directory_errors

ROLES = ("administrator", "helpdesk", "user")


def _store(config_path: Path | None) -> tuple[object, object]:
    from mailbastion.directory.portal import PortalStore
    from mailbastion.directory.store import Directory

    settings = load(config_path)
    return settings, PortalStore(Directory.from_settings(settings))


@account_group.command("enrol-link")
@click.argument("address")
@click.option("--reason", default="", help="why, e.g. the joiner ticket (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def enrol_link(address: str, reason: str, by: str, config_path: Path | None) -> None:
    """Print a one-time portal link with which ADDRESS sets its password (and TOTP when its role needs it).

    The link expires after portal.enrol_link_hours; a new link makes earlier unused ones stop working.
    Hand it over through a channel you trust: it is the credential."""
    from mailbastion.portal.context import make_enrol_link

    settings, store = _store(config_path)
    url = make_enrol_link(settings, store, address, by=by, reason=reason)  # type: ignore[arg-type]
    click.echo(f"enrolment link for {address} (works once, for {settings.portal.enrol_link_hours} hours):")  # type: ignore[attr-defined]
    click.echo(url)


@account_group.command("role")
@click.argument("address")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--reason", required=True, help="why (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def role(address: str, role: str, reason: str, by: str, config_path: Path | None) -> None:
    """Give ADDRESS a portal role: administrator (everything; TOTP required), helpdesk (accounts of users
    only), user. Its open portal sessions end."""
    _, store = _store(config_path)
    store.set_role(address, role, by=by, reason=reason)  # type: ignore[attr-defined]
    click.echo(f"{address} is now a portal {role}")


@account_group.command("totp-reset")
@click.argument("address")
@click.option("--reason", required=True, help="why (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def totp_reset(address: str, reason: str, by: str, config_path: Path | None) -> None:
    """Remove the portal second factor of ADDRESS (a lost phone); it enrols a new one at its next sign-in."""
    from mailbastion.directory.webauthn_keys import SecurityKeys

    _, store = _store(config_path)
    store.reset_totp(address, by=by, reason=reason)  # type: ignore[attr-defined]
    keys = SecurityKeys(store.directory)  # type: ignore[attr-defined]  # no key outlives the TOTP it stands in for
    removed = keys.remove(address, None, by=by, reason=reason) if keys.list(address) else 0
    also = f" and {removed} security key(s)" if removed else ""
    click.echo(f"second factor of {address}{also} removed; its portal sessions ended")


@main_group.group("portal")
def portal_group() -> None:
    """The web portal: its scheduled work, run by hand."""


@portal_group.command("digest")
@config_option
@handle_errors
def digest(config_path: Path | None) -> None:
    """Mail the quarantine digest now to every account with mail held since the last digest."""
    from mailbastion.measures.board import MeasureBoard
    from mailbastion.portal.context import PortalContext
    from mailbastion.portal.digest import send_digests

    settings = load(config_path)
    ctx = PortalContext.from_settings(settings, measures=MeasureBoard([]))
    sent = asyncio.run(send_digests(ctx))
    for address, queue_id in sent:
        click.echo(f"{address}: queued as {queue_id}")
    click.echo(f"{len(sent)} digest(s) queued")
