"""`mailbastion pickup show TOKEN --code CODE | purge`: the secure pick-up store, before its portal page exists.

`show` opens a pick-up with the link's token and the one-time code (once: the message is gone after;
a wrong code counts an attempt, and the last one destroys it) and writes the message to stdout or --out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group


@main_group.group("pickup")
def pickup_group() -> None:
    """Confidential messages waiting for recipients without keys (secure pick-up)."""


@pickup_group.command("show")
@config_option
@click.argument("token")
@click.option("--code", required=True, help="the one-time code the sender passed on")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write here (0600)")
@handle_errors
def show_cmd(config_path: Path | None, token: str, code: str, out: Path | None) -> None:
    """Open a pick-up (once) and print the message."""
    from mailbastion.crypto.pickup import PickupError, PickupStore
    from mailbastion.private_files import write_private

    settings = load(config_path)
    token = token.rstrip("/").rpartition("/")[2]  # the whole link works too
    try:
        message = PickupStore.from_settings(settings).open(token, code)
    except PickupError as exc:
        raise Failed(str(exc)) from None
    if out is not None:
        write_private(out, message)
        click.echo(f"written to {out}", err=True)
    else:
        sys.stdout.buffer.write(message)
        sys.stdout.buffer.flush()


@pickup_group.command("purge")
@config_option
@handle_errors
def purge_cmd(config_path: Path | None) -> None:
    """Remove expired pick-ups (a daily cron line)."""
    from mailbastion.crypto.pickup import PickupStore

    n = PickupStore.from_settings(load(config_path)).purge()
    click.echo(f"{n} expired pick-up{'s' if n != 1 else ''} removed")
