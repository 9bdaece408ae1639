"""`mailbastion serve [--role all|gateway|internal]`."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.core.errors import ConfigError

# Each role is a composition root of its own that imports only what it runs: the gateway's module never
# reaches the directory, passwords or mailboxes (apps/selfcheck.py proves it from the running process).
ROLE_MODULES = {"all": "role_all", "gateway": "role_gateway", "internal": "role_internal",
                "mda": "role_internal"}  # "mda": the internal role's earlier name


@main_group.command("serve")
@config_option
@click.option("--role", type=click.Choice(list(ROLE_MODULES)), default=None, show_default="server.role",
              help="all: every role in one process; gateway: the DMZ MTA; internal (mda): the MDA, "
                   "directory and mailboxes")
def serve(config_path: Path | None, role: str | None) -> None:
    """Run mailbastion until SIGTERM (drain, then stop). SIGHUP reloads configuration and certificates;
    SIGUSR2 writes a self-check (loaded modules, open files) below data_dir/run/. Started as root, it runs
    as server.user once it has read its configuration, and keeps no capability once its ports are bound."""
    from mailbastion.apps.process import ServerProcess, prepare_process, setup_logging
    from mailbastion.smtp.listeners import install_uvloop

    settings = load(config_path)
    configured = settings.server.role
    role = role or configured
    name = "internal" if role == "mda" else role
    if configured != "all" and name != configured:  # a gateway's file lacks what the internal role needs
        raise Failed(f"{settings.source}: server.role is {configured!r}: this configuration cannot run the "
                     f"{name} role")
    setup_logging(settings)
    install_uvloop()
    try:
        prepare_process(settings)  # as root: become server.user (before any file is made or process forked)
    except ConfigError as exc:
        raise Failed(str(exc)) from None
    roles = importlib.import_module(f"mailbastion.apps.{ROLE_MODULES[role]}").roles(settings)
    try:
        for r in roles:  # forks (acceptors, the MDA's own process) happen here, before any event loop
            r.prefork()
    except ConfigError as exc:
        raise Failed(str(exc)) from None
    except OSError as exc:
        raise Failed(f"cannot start: {exc}") from None

    async def main() -> None:
        server = ServerProcess(settings, name, roles, endpoint=True)
        try:
            lines = await server.start()
        except ConfigError as exc:
            raise Failed(str(exc)) from None
        except OSError as exc:
            raise Failed(f"cannot start: {exc}") from None
        server.handle_signals()  # before the line tests and operators wait for
        click.echo(f"mailbastion serving ({name}) from {settings.source}")
        for line in lines:
            click.echo(f"  {line}")
        click.echo("  SIGTERM drains and stops; SIGHUP reloads", nl=True)
        await server.run_until_signal()

    asyncio.run(main())
