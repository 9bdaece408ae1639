"""`mailbastion audit-log verify | head | list`: check the hash chain, read the records.

They open the audit database (`[audit] url`) and nothing else: no directory code, so they work on the
gateway host too.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from mailbastion.audit import AuditLog
from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group

F = TypeVar("F", bound=Callable[..., Any])


def audit_errors(fn: F) -> F:
    """Our errors and database errors as one line and exit 1 (no traceback)."""

    @functools.wraps(fn)
    @handle_errors
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SQLAlchemyError as exc:
            raise Failed(f"audit database error: {str(exc).splitlines()[0]}") from None

    return wrapper  # type: ignore[return-value]


def _open(config_path: Path | None) -> AuditLog:
    return AuditLog(load(config_path).audit_url)


@main_group.group("audit-log")
def audit_log_group() -> None:
    """The tamper-evident log of every admin and lifecycle change."""


@audit_log_group.command("verify")
@click.option("--anchor", default=None, metavar="SEQ:HASH",
              help="a head kept elsewhere (from `audit-log head`); the chain must contain it")
@config_option
@audit_errors
def verify(anchor: str | None, config_path: Path | None) -> None:
    """Check every record's hash and the chain; exit 1 naming the first bad record."""
    parsed = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise Failed("--anchor must be SEQ:HASH (64 hex digits)")
        parsed = (int(seq), digest.lower())
    result = _open(config_path).verify(anchor=parsed)
    if not result.ok:
        raise Failed(f"audit log BROKEN at record {result.first_bad_seq}: {result.problem}")
    click.echo(f"audit log intact: {result.count} records")


@audit_log_group.command("head")
@config_option
@audit_errors
def head(config_path: Path | None) -> None:
    """Print SEQ:HASH of the newest record; keep it elsewhere to verify against later."""
    seq, digest = _open(config_path).head()
    click.echo(f"{seq}:{digest}")


@audit_log_group.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--subject", default=None, help="only records about this address or domain")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@config_option
@audit_errors
def list_events(limit: int, subject: str | None, as_json: bool, config_path: Path | None) -> None:
    """The newest records first."""
    for e in _open(config_path).events(limit=limit, subject=subject):
        if as_json:
            click.echo(json.dumps({"seq": e.seq, "time": e.time, "actor": e.actor, "action": e.action,
                                   "subject": e.subject, "reason": e.reason, "details": dict(e.details),
                                   "hash": e.hash}))
        else:
            details = json.dumps(dict(e.details), sort_keys=True) if e.details else ""
            click.echo(f"{e.seq:>6} {e.time} {e.actor:20} {e.action:32} {e.subject:32} {e.reason} {details}".rstrip())
