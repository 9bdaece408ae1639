"""`mailbastion config show`: the effective configuration, secrets masked (like `postconf -n`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mailbastion.cli._common import config_option, load, main_group
from mailbastion.config import effective
from mailbastion.config.toml_writer import dumps


@main_group.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of TOML")
def show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective configuration (defaults filled in, secrets masked)."""
    settings = load(config_path)
    data = effective(settings)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"# effective configuration of {settings.source} (unset optional keys are not shown)")
    click.echo(dumps(data).rstrip())
