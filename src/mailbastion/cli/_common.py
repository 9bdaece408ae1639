"""Shared pieces of the command line: the root group, -c FILE, and error handling."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mailbastion import __version__
from mailbastion.config import Settings, default_config_path, load_settings
from mailbastion.core.errors import ConfigError, MailError

F = TypeVar("F", bound=Callable[..., Any])


# Which module defines each top-level command: a command's module (and what it imports: scikit-learn,
# SQLAlchemy, YARA...) is loaded only when that command runs, so every command starts quickly.
COMMAND_MODULES = {
    "account": "directory", "audit-log": "audit_log", "av": "antivirus", "config": "config", "dkim": "dns",
    "dns": "dns", "domain": "directory", "init": "init", "quarantine": "quarantine", "queue": "queue",
    "scan": "scan", "serve": "serve", "spam": "spam",
}
COMMAND_MODULES["reports"] = "reports"  # DMARC and TLS-RPT reports: read ours, send our TLS-RPT
COMMAND_MODULES["keys"] = "keys"  # users' S/MIME certificates and OpenPGP keys
COMMAND_MODULES["pickup"] = "pickup"  # the secure pick-up of confidential mail for recipients without keys
COMMAND_MODULES["pki"] = "pki"  # split deployment: the gateway's certificate bundle (issue-gateway)
COMMAND_MODULES["firewall"] = "firewall"  # split deployment: nftables rules per role
COMMAND_MODULES["units"] = "units"  # hardened systemd units per role
COMMAND_MODULES.update(account="portal", portal="portal")  # cli/portal.py adds enrol-link/role to `account`
COMMAND_MODULES.update(people="lifecycle")  # cli/lifecycle.py: people import (and leave, start under `account`)
# `account` is built by one module that imports the others adding to it (directory, portal, lifecycle):
COMMAND_MODULES["account"] = "sending"  # cli/sending.py adds send-as/unsuspend/sending
COMMAND_MODULES["submission"] = "sending"  # held confidential messages: list, release


class LazyGroup(click.Group):
    """The root group: imports `mailbastion.cli.<module>` on first use of one of its commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            import importlib

            importlib.import_module(f"mailbastion.cli.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="mailbastion")
def main_group() -> None:
    """mailbastion: receive, filter, deliver and send email with every security measure on."""


def config_option(fn: F) -> F:
    """Adds `-c/--config FILE` (default $MAILBASTION_CONFIG, else ./var/mailbastion.toml)."""
    return click.option(
        "-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="configuration file (default: $MAILBASTION_CONFIG, else ./var/mailbastion.toml)",
    )(fn)


def load(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path or default_config_path())
    except ConfigError as exc:
        raise Failed(f"configuration error: {exc}") from None


class Failed(click.ClickException):
    """A command that failed: message on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"mailbastion: {self.format_message()}", err=True)


def handle_errors(fn: F) -> F:
    """Turn our errors into one clear line and exit code 1; never a traceback for expected failures."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, MailError, OSError) as exc:
            raise Failed(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def valid_domain(text: str) -> str:
    """A mail domain as given on the command line, normalised (lower case, A-labels, no final dot).
    Raises Failed with one line for anything that is not a fully qualified domain name."""
    from mailbastion.core.address import AddressError, parse_address

    name = text.strip()
    name = name.removesuffix(".")
    try:
        address = parse_address(f"postmaster@{name}", allow_utf8=True)
    except AddressError as exc:
        raise Failed(f"invalid domain {text!r}: {exc}") from None
    if address.is_literal:
        raise Failed(f"invalid domain {text!r}: an address literal is not a mail domain")
    return address.domain


def echo_err(text: str) -> None:
    click.echo(text, err=True)


def is_tty() -> bool:
    return sys.stdout.isatty()
