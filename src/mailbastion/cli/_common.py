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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
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


def echo_err(text: str) -> None:
    click.echo(text, err=True)


def is_tty() -> bool:
    return sys.stdout.isatty()
