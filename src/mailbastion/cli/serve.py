"""`mailbastion serve [--role all|gateway|mda]`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.core.errors import ConfigError


@main_group.command("serve")
@config_option
@click.option("--role", type=click.Choice(["all", "gateway", "mda"]), default="all", show_default=True,
              help="all: every role in one process; gateway: the DMZ MTA; mda: the internal delivery agent")
def serve(config_path: Path | None, role: str) -> None:
    """Run mailbastion until SIGTERM (drain, then stop). SIGHUP reloads configuration and certificates."""
    from mailbastion.apps.runtime import Runtime, install_uvloop, setup_logging

    settings = load(config_path)
    setup_logging(settings)
    install_uvloop()

    async def main() -> None:
        runtime = Runtime(settings, role)
        try:
            lines = await runtime.start()
        except ConfigError as exc:
            await runtime.stop(0)
            raise Failed(str(exc)) from None
        except OSError as exc:
            await runtime.stop(0)
            raise Failed(f"cannot start: {exc}") from None
        click.echo(f"mailbastion serving ({role}) from {settings.source}")
        for line in lines:
            click.echo(f"  {line}")
        click.echo("  SIGTERM drains and stops; SIGHUP reloads", nl=True)
        await runtime.run_until_signal()

    asyncio.run(main())
