"""The `mailbastion` command. Exit codes: 0 ok, 1 failed, 2 usage.

Each command group lives in its own module and is added here; every command takes `-c FILE`
(default `$MAILBASTION_CONFIG`, else `./var/mailbastion.toml`).
"""

from __future__ import annotations

import importlib
import sys

import click

from mailbastion.cli._common import main_group

# Command modules, each adds its commands to `main_group` on import.
_COMMAND_MODULES = (
    "init", "serve", "config", "directory", "queue", "audit_log", "dns", "antivirus", "quarantine", "spam", "scan",
)
for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"mailbastion.cli.{_name}")
    except ModuleNotFoundError as exc:  # a module not written yet must not break the others
        if exc.name != f"mailbastion.cli.{_name}":
            raise


def main() -> None:
    try:
        main_group.main(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(1)


__all__ = ["main", "main_group"]
