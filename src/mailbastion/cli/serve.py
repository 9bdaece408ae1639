"""`mailbastion serve [--role all|gateway|mda]`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.config import Settings
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

    acceptors = mda_process = None
    acceptor_checks: tuple[str, ...] = ()
    if settings.server.workers > 1 and role in ("all", "gateway"):
        # Bind and check once, then fork the acceptors before any event loop runs.
        import mailbastion.apps.pipeline  # noqa: F401  (heavy imports before the fork: shared pages)
        from mailbastion.apps.runtime import clear_spool_tmp
        from mailbastion.apps.workers import bind_gateway_sockets, start_acceptors

        try:
            acceptor_checks = _check_gateway_config(settings)
            sockets = bind_gateway_sockets(settings)
        except ConfigError as exc:
            raise Failed(str(exc)) from None
        except OSError as exc:
            raise Failed(f"cannot listen: {exc}") from None
        try:
            clear_spool_tmp(settings)  # before the acceptors, the spool's writers, exist
        except OSError as exc:
            raise Failed(f"cannot prepare the spool: {exc}") from None
        acceptors = start_acceptors(settings, sockets, settings.server.workers)
        if role == "all":
            from mailbastion.apps.workers import start_mda_process

            mda_process = start_mda_process(settings)

    async def main() -> None:
        runtime = Runtime(settings, role, acceptors=acceptors, mda_process=mda_process,
                          acceptor_checks=acceptor_checks)
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


def _check_gateway_config(settings: Settings) -> tuple[str, ...]:
    """The start-up rules the acceptors would hit, checked once in the parent with a clear message.
    Returns the names of the checks the acceptors will run."""
    from mailbastion.apps.features import gateway_services
    from mailbastion.apps.pipeline import build_pipeline, refuse_on_problems

    pipeline, features = build_pipeline(gateway_services(settings))
    refuse_on_problems(features)
    return tuple(c.name for c in pipeline.checks)
