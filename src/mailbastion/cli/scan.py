"""`mailbastion scan FILE.eml|DIR`: the whole pipeline on a message file, as if it had arrived by SMTP.

The tool an administrator uses to answer "why was this refused?": it prints the action, the score and
every symbol with its score and detail. Nothing is delivered, spooled or learned.

Nothing is counted either: rate limits, greylisting and the report addresses keep state about SMTP
conversations and learning, so `scan` runs without them (a folder of 8,000 messages is not a flood).

Stored mail is judged as of when it arrived: date rules (DATE_IN_PAST, DATE_IN_FUTURE) compare its Date
with its newest Received header, not with today (`--now now` or `--now 2024-05-01T12:00Z` overrides).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from mailbastion.cli._common import Failed, config_option, load, main_group
from mailbastion.config import Settings
from mailbastion.core.address import AddressError, parse_path
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import ConfigError
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Edit, Symbol, Verdict
from mailbastion.policy.check import CheckContext
from mailbastion.policy.pipeline import Pipeline
from mailbastion.spam.arrival import ArrivalTime, received_time


def _files(paths: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        else:
            out.append(p)
    return out


def _strip_mbox_line(raw: bytes) -> bytes:
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        return raw[nl + 1:] if nl >= 0 else b""
    return raw


def without_state(settings: Settings) -> Settings:
    """`settings` with the checks that remember or learn turned off: scanning must change nothing."""
    spam = settings.spam
    off = {"enabled": False}
    spam = spam.model_copy(update={"ratelimit": spam.ratelimit.model_copy(update=off),
                                   "greylist": spam.greylist.model_copy(update=off),
                                   "report": spam.report.model_copy(update=off)})
    return settings.model_copy(update={"spam": spam})


def arrival_of(message: SpooledMessage, now: str = "received") -> float:
    """When `message` is taken to have arrived. `now`: "received" (its newest Received header, else its
    Date, else the clock), "now" (the clock), or an ISO 8601 date-time (UTC when it names no zone).
    Raises ValueError for anything else."""
    if now == "now":
        return time.time()
    if now != "received":
        when = datetime.fromisoformat(now)  # Python 3.11 reads "Z" and "+02:00"
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    found = received_time(message.header)
    if found is None:  # no Received field (a draft, an export): its own Date makes the date rules neutral
        date = message.header.first("Date")
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            found = email.utils.parsedate_to_datetime(date).timestamp() if date else None
    return found if found is not None else time.time()


async def scan_message(pipeline: Pipeline, raw: bytes, *, sender: str, ip: str, helo: str,
                       recipients: list[str], arrival: float | None = None) -> Verdict:
    """The verdict the pipeline gives `raw`. `arrival` (POSIX seconds): when the message is judged to have
    arrived (date rules); None: now, as on the live path."""
    mail_from = parse_path(sender, allow_null=True, allow_utf8=True) if sender else None
    rcpts = tuple(a for a in (parse_path(r, allow_utf8=True) for r in recipients) if a is not None)
    envelope = Envelope(mail_from, rcpts, helo=helo, body_8bitmime=True, smtputf8=True)
    peer = PeerInfo(ip=ip, helo=helo)
    symbols: list[Symbol] = []
    facts: dict[type, object] = {} if arrival is None else {ArrivalTime: ArrivalTime(arrival)}
    forced = None
    edits: list[Edit] = []
    stages = [Stage.CONNECT, Stage.HELO, Stage.MAIL] + ([Stage.RCPT] if rcpts else []) + [Stage.DATA]
    for stage in stages:
        targets: list[object] = list(rcpts) if stage == Stage.RCPT else [None]
        for rcpt in targets:
            ctx = CheckContext(stage, peer, envelope, rcpt=rcpt,  # type: ignore[arg-type]
                               message=SpooledMessage(raw) if stage == Stage.DATA else None,
                               symbols=symbols, facts=facts)
            outcome = await pipeline.run_stage(ctx)
            edits.extend(outcome.edits)
            if outcome.forced and (forced is None or outcome.forced.action > forced.action):
                forced = outcome.forced
    return pipeline.decide(symbols, forced, edits)


def _verdict_json(path: Path, v: Verdict) -> dict[str, object]:
    return {
        "file": str(path),
        "action": v.action.name.lower(),
        "score": v.score,
        "forced_by": v.forced.by if v.forced else None,
        "reply": str(v.reply) if v.reply else None,
        "symbols": [{"name": s.name, "score": s.score, "detail": s.detail, "group": s.group} for s in v.symbols],
    }


@main_group.command("scan")
@config_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--from", "sender", default="", help="envelope sender (MAIL FROM); default the null sender <>")
@click.option("--rcpt", "recipients", multiple=True, help="envelope recipient (may repeat); runs the RCPT checks")
@click.option("--ip", default="192.0.2.1", show_default=True, help="client address the message came from")
@click.option("--helo", default="unknown.invalid", show_default=True, help="HELO/EHLO name the client gave")
@click.option("--now", "now", default="received", show_default=True, metavar="received|now|ISO-DATE",
              help="judge date rules as of: the message's newest Received header, the clock, or this date-time")
@click.option("--json", "as_json", is_flag=True, help="one JSON line per message")
def scan(config_path: Path | None, paths: tuple[Path, ...], sender: str, recipients: tuple[str, ...], ip: str,
         helo: str, now: str, as_json: bool) -> None:
    """Run the pipeline on message files and print each verdict with every symbol."""
    try:
        arrival_of(SpooledMessage(b""), now)
    except ValueError:
        raise click.BadParameter(f"{now!r}: not 'received', 'now' nor an ISO 8601 date-time",
                                 param_hint="--now") from None
    settings = without_state(load(config_path))
    from mailbastion.apps.runtime import build_services_for_scan

    async def run() -> int:
        try:
            pipeline, features = await build_services_for_scan(settings)
        except ConfigError as exc:
            raise Failed(str(exc)) from None
        try:
            for path in _files(paths):
                raw = _strip_mbox_line(path.read_bytes())
                try:
                    v = await scan_message(pipeline, raw, sender=sender, ip=ip, helo=helo,
                                           recipients=list(recipients),
                                           arrival=arrival_of(SpooledMessage(raw), now))
                except AddressError as exc:
                    raise Failed(f"bad address: {exc}") from None
                if as_json:
                    click.echo(json.dumps(_verdict_json(path, v)))
                    continue
                forced = f" (forced by {v.forced.by})" if v.forced else ""
                click.echo(f"{path}: {v.action.name.lower()}{forced}, score {v.score:.2f}")
                if v.reply:
                    click.echo(f"  reply: {v.reply}")
                for s in sorted(v.symbols, key=lambda s: -abs(s.score)):
                    detail = f"  {s.detail}" if s.detail else ""
                    click.echo(f"  {s.name:<28} {s.score:>7.2f}{detail}")
        finally:
            for f in features:
                await f.stop()
        return 0

    asyncio.run(run())
