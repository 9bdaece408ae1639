"""`mailbastion config show`: the effective configuration, secrets masked (like `postconf -n`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mailbastion.cli._common import config_option, load, main_group
from mailbastion.config import effective


@main_group.group("config")
def config_group() -> None:
    """Inspect the configuration."""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return '""  # unset'
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(v)


def _emit(prefix: str, data: dict[str, Any], out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if scalars and prefix:
        out.append(f"[{prefix}]")
    for k, v in scalars.items():
        out.append(f"{k} = {_toml_value(v)}")
    if scalars:
        out.append("")
    for k, v in tables.items():
        _emit(f"{prefix}.{k}" if prefix else k, v, out)


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
    out: list[str] = [f"# effective configuration of {settings.source}"]
    _emit("", data, out)
    click.echo("\n".join(out).rstrip())
