"""`mailbastion firewall [--role gateway|internal|all]`: this host's nftables rules, from its configuration."""

from __future__ import annotations

from pathlib import Path

import click

from mailbastion.cli._common import config_option, handle_errors, load, main_group


@main_group.command("firewall")
@config_option
@click.option("--role", type=click.Choice(["all", "gateway", "internal"]), default=None,
              show_default="server.role", help="the host whose rules to print")
@handle_errors
def firewall(config_path: Path | None, role: str | None) -> None:
    """Print an nftables ruleset (table inet mailbastion) for this host: which ports from where, and what it may
    open, each rule named after the setting it comes from. Load it with `nft -f FILE`."""
    from mailbastion.deploy.firewall import ruleset

    click.echo(ruleset(load(config_path), role).render(), nl=False)
