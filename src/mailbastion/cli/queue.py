"""`mailbastion queue list | show ID | retry ID | flush | delete ID | hold ID | release ID` (postqueue/postsuper).

They act on the spool's state directories directly, so they work whether or not the server runs; a running
queue manager notices the change at its next scan. Unknown ids and busy entries exit 1 with one line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.spool.control import QueueControl, QueueControlError, QueueEntry
from mailbastion.spool.layout import QueueState

T = TypeVar("T")


def _control(config_path: Path | None) -> QueueControl:
    settings = load(config_path)
    root = settings.path(settings.spool.dir)
    if not root.is_dir():
        raise Failed(f"no spool at {root}")
    return QueueControl(root)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(e: QueueEntry) -> list[str]:
    marker = {QueueState.ACTIVE: "*", QueueState.HOLD: "!", QueueState.CORRUPT: "#"}.get(e.state, "")
    if e.record is None:
        return [f"{e.queue_id}{marker:<1} {e.size:>9}  {e.state.value}: unreadable record ({e.error})"]
    r = e.record
    lines = [f"{e.queue_id}{marker:<1} {e.size:>9}  {_when(r.arrival)}  <{r.sender}>  [{e.state.value}]"]
    for rc in r.recipients:
        extra = ""
        if rc.status.value == "deferred":
            extra = f"  next {_when(rc.next_retry)}  ({rc.reply_line})"
        elif rc.status.value == "failed":
            extra = f"  ({rc.reply_line}{', expired' if rc.expired else ''})"
        lines.append(f"{'':22}<{rc.address}>  {rc.status.value}  attempts={rc.attempts}{extra}")
    return lines


def _run(fn: Callable[[str], T], queue_id: str) -> T:
    try:
        return fn(queue_id)
    except QueueControlError as exc:
        raise Failed(str(exc)) from None
    except OSError as exc:
        raise Failed(f"{queue_id}: {exc}") from None


@main_group.group("queue")
def queue_group() -> None:
    """Inspect and manage the mail queue (like postqueue/postsuper)."""


@queue_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="one JSON object per message")
def list_cmd(config_path: Path | None, as_json: bool) -> None:
    """List queued messages: id, size, arrival, sender, each recipient with its status.

    Markers after the id: * being delivered, ! on hold, # corrupt."""
    control = _control(config_path)
    count = 0
    for e in control.entries():
        count += 1
        if as_json:
            click.echo(json.dumps({"queue_id": e.queue_id, "state": e.state.value, "size": e.size,
                                   "record": asdict(e.record) if e.record else None, "error": e.error}))
        else:
            click.echo("\n".join(_summary(e)) + "\n")
    if not as_json:
        click.echo("Mail queue is empty" if count == 0 else f"-- {count} message(s) in the queue")


@queue_group.command("show")
@config_option
@click.argument("queue_id")
def show_cmd(config_path: Path | None, queue_id: str) -> None:
    """Print one message's queue record and its headers."""
    control = _control(config_path)
    entry = _run(control.get, queue_id)
    click.echo(f"state: {entry.state.value}")
    if entry.record is not None:
        click.echo(json.dumps(json.loads(entry.record.to_json()), indent=1, ensure_ascii=False))
    else:
        click.echo(f"record unreadable: {entry.error}")
    headers = _run(control.headers, queue_id)
    click.echo("")
    click.echo(headers.decode("utf-8", "replace").replace("\r\n", "\n"))


@queue_group.command("retry")
@config_option
@click.argument("queue_id")
def retry_cmd(config_path: Path | None, queue_id: str) -> None:
    """Try a deferred (or held) message again now."""
    state = _run(_control(config_path).retry, queue_id)
    click.echo(f"{queue_id}: moved from {state}/ to incoming/ for immediate delivery")


@queue_group.command("flush")
@config_option
def flush_cmd(config_path: Path | None) -> None:
    """Try every deferred message again now (like postqueue -f)."""
    moved = _control(config_path).flush()
    click.echo(f"{len(moved)} deferred message(s) moved to incoming/ for immediate delivery")


@queue_group.command("delete")
@config_option
@click.argument("queue_id")
def delete_cmd(config_path: Path | None, queue_id: str) -> None:
    """Delete a message from the queue, without a bounce."""
    state = _run(_control(config_path).delete, queue_id)
    click.echo(f"{queue_id}: deleted from {state}/")


@queue_group.command("hold")
@config_option
@click.argument("queue_id")
def hold_cmd(config_path: Path | None, queue_id: str) -> None:
    """Put a message on hold: it is not delivered until released."""
    state = _run(_control(config_path).hold, queue_id)
    click.echo(f"{queue_id}: moved from {state}/ to hold/")


@queue_group.command("release")
@config_option
@click.argument("queue_id")
def release_cmd(config_path: Path | None, queue_id: str) -> None:
    """Release a held message for delivery."""
    _run(_control(config_path).release, queue_id)
    click.echo(f"{queue_id}: released to incoming/")
