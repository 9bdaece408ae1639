"""The `mailbastion` command. Exit codes: 0 ok, 1 failed, 2 usage.

Each command group lives in its own module and is added here; every command takes `-c FILE`
(default `$MAILBASTION_CONFIG`, else `./var/mailbastion.toml`).
"""

from __future__ import annotations

import sys

import click

from mailbastion.cli._common import COMMAND_MODULES, main_group

COMMAND_MODULES["tls"] = "tls"  # certificates: status, renew, import
COMMAND_MODULES["audit"] = "audit"  # the ten measures checked live (measures/)
COMMAND_MODULES["aup"] = "aup"  # the acceptable use policy: publish, list, show, report (aup/)
COMMAND_MODULES["phish"] = "phish"  # reported phishing: sweep a message's copies, list the reports (phish_report/)
COMMAND_MODULES["training"] = "training"  # measure 8: modules, assignments, phishing simulations, the report


def main() -> None:
    try:
        main_group.main(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(1)


__all__ = ["COMMAND_MODULES", "main", "main_group"]
