"""`mailbastion config show`: the effective configuration, secrets masked (like `postconf -n`).

The TOML it prints loads back as a configuration (arrays of tables stay tables). Keys that a reload
(SIGHUP) does not apply are marked `# restart` (see `config/reload.py`). TOML has no null: a key that is
unset although its default is not (e.g. `antivirus.clamav.socket` when `address` is used) is printed as
`""  # unset`, which the sections read as unset.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from mailbastion.cli._common import config_option, load, main_group
from mailbastion.config import effective
from mailbastion.config.reload import restart_marks
from mailbastion.config.toml_writer import dumps

UNSET = "unset"


@main_group.group("config")
def config_group() -> None:
    """Inspect the configuration."""


def unset_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted keys whose value is None while their default is not: leaving them out would bring the
    default back, so `show` writes them as an empty string."""
    out: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, BaseModel):
            out.extend(unset_keys(value, key))
        elif value is None and field.default is not None and type(None) in typing.get_args(field.annotation):
            out.append(key)
    return out


def show_toml(settings: Any, *, marks: bool = True) -> str:
    """The effective configuration as TOML that `load_settings` reads back to the same settings."""
    data = effective(settings)
    comments = restart_marks(data) if marks else {}
    for key in unset_keys(settings):
        *path, leaf = key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[leaf] = ""
        comments[key] = UNSET if key not in comments else f"{UNSET}; {comments[key]}"
    return dumps(data, comments=comments)


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of TOML")
@click.option("--no-marks", is_flag=True, help="do not mark the keys that only a restart applies")
def show(config_path: Path | None, as_json: bool, no_marks: bool) -> None:
    """Print the effective configuration (defaults filled in, secrets masked). Keys marked `# restart`
    (or a table so marked) keep their running value until a restart; SIGHUP applies every other key."""
    settings = load(config_path)
    if as_json:
        click.echo(json.dumps(effective(settings), indent=2))
        return
    click.echo(f"# effective configuration of {settings.source} (unset optional keys are not shown)")
    if not no_marks:
        click.echo("# `# restart`: applied only when the server restarts; every other key: on SIGHUP (reload)")
    click.echo(show_toml(settings, marks=not no_marks).rstrip())
