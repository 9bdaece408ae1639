"""`mailbastion init --dir DIR --domain DOMAIN`."""

from __future__ import annotations

from pathlib import Path

import click

from mailbastion.cli._common import Failed, main_group
from mailbastion.core.errors import ConfigError, MalformedAddress


@main_group.command("init")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("var"),
              show_default=True, help="folder of the new deployment")
@click.option("--domain", required=True, help="the first mail domain, e.g. example.org")
@click.option("--hostname", default=None, help="this server's name (default: mail.DOMAIN)")
def init(directory: Path, domain: str, hostname: str | None) -> None:
    """Create a new deployment: configuration, certificates, directory, postmaster account."""
    from mailbastion.apps.bootstrap import initialise

    try:
        result = initialise(directory, domain, hostname=hostname)
    except MalformedAddress as exc:
        raise Failed(f"invalid domain {domain!r}: {exc}") from None
    except (ConfigError, OSError) as exc:
        raise Failed(str(exc)) from None
    click.echo(f"deployment created: {result.config}")
    click.echo(f"account {result.postmaster}, password (shown once, store it now): {result.password}")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"start it with: mailbastion serve -c {result.config}")
