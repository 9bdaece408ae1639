"""`mailbastion quarantine list | show ID | release ID [--force] | delete ID` (every release/delete audited)."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from pathlib import Path
from typing import Any

import click

from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group


def _store(settings: Any) -> Any:
    from mailbastion.quarantine.store import QuarantineStore

    return QuarantineStore.from_settings(settings)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001
        user = str(os.getuid())
    return f"cli:{user}"


@main_group.group("quarantine")
def quarantine_group() -> None:
    """Messages held for the administrator."""


@quarantine_group.command("list")
@config_option
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def list_cmd(config_path: Path | None, limit: int, as_json: bool) -> None:
    """Quarantined messages, newest first."""
    entries = _store(load(config_path)).list(limit=limit)
    if as_json:
        click.echo(json.dumps([{"id": e.id, "received_at": e.received_at, "sender": e.sender,
                                "recipients": list(e.recipients), "subject": e.subject, "action": e.action,
                                "is_malware": e.is_malware, "reasons": list(e.reasons)} for e in entries], indent=2))
        return
    if not entries:
        click.echo("quarantine is empty")
        return
    for e in entries:
        flag = "MALWARE " if e.is_malware else ""
        reasons = ", ".join(r for r in e.reasons if r.startswith("AV_") or not e.is_malware)[:100]
        click.echo(f"{e.id}  {e.received_at}  <{e.sender}> -> {', '.join(e.recipients)[:60]}  {flag}{reasons}")


@quarantine_group.command("show")
@click.argument("qid")
@config_option
@click.option("--raw", is_flag=True, help="print the message itself")
@handle_errors
def show(qid: str, config_path: Path | None, raw: bool) -> None:
    """The verdict (symbols, engines, reasons) of one message, or the message with --raw."""
    from mailbastion.quarantine.store import UnknownQuarantineId

    store = _store(load(config_path))
    try:
        if raw:
            click.echo(store.message(qid).decode("utf-8", "replace"), nl=False)
            return
        e = store.get(qid)
    except UnknownQuarantineId as exc:
        raise Failed(str(exc)) from None
    click.echo(f"id:          {e.id}\nreceived:    {e.received_at} from {e.client}\nsender:      <{e.sender}>")
    click.echo(f"recipients:  {', '.join(e.recipients)}\nsubject:     {e.subject}\nsize:        {e.size}")
    click.echo(f"sha256:      {e.sha256}\nverdict:     {e.action} score={e.score:g}"
               + (f" forced_by={e.forced_by}" if e.forced_by else ""))
    click.echo(f"malware:     {'yes (release needs --force)' if e.is_malware else 'no'}")
    click.echo(f"engines:     {', '.join(e.engines) or '-'}\nsymbols:")
    for s in e.symbols:
        detail = f"({s['detail']})" if s.get("detail") else ""
        click.echo(f"  {s['name']}{detail} = {s.get('score', 0):g}")


def _release_api(settings: Any, *, need_spool: bool) -> Any:
    from mailbastion.quarantine.release import QuarantineRelease, open_audit_log

    spool, directory = None, None
    if need_spool:
        from mailbastion.directory.recipient_map import RecipientMap
        from mailbastion.spool.writer import Spool

        spool = Spool.for_system_mail(settings)  # a queue manager delivers it in every role
        # The address-only map, as the gateway sees it (this command runs where the quarantine is).
        directory = RecipientMap(settings.path(settings.directory.recipient_map))
        if not directory.loaded:
            raise Failed(f"cannot check the recipients: no recipient map at {directory.path}")
    q = getattr(settings, "quarantine", None) or settings.antivirus.quarantine
    return QuarantineRelease(_store(settings), spool, open_audit_log(q.audit_url or settings.audit_url),
                             directory)


def _addresses(values: tuple[str, ...]) -> list[Any]:
    from mailbastion.core.address import AddressError, parse_address

    out = []
    for value in values:
        try:
            out.append(parse_address(value.strip(), allow_utf8=True))
        except AddressError as exc:
            raise Failed(f"invalid address {value!r}: {exc}") from None
    return out


@quarantine_group.command("release")
@click.argument("qid")
@config_option
@click.option("--force", is_flag=True, help="release even though an engine called it malware")
@click.option("--to", "to", multiple=True, metavar="ADDRESS",
              help="deliver to ADDRESS instead of the original recipients (repeat for several)")
@click.option("--reason", default="", help="why (kept in the audit log)")
@click.option("--actor", default=None, help="who (default: cli:<user>)")
@handle_errors
def release(qid: str, config_path: Path | None, force: bool, to: tuple[str, ...], reason: str,
            actor: str | None) -> None:
    """Deliver a held message to its recipients (through the spool). Audited.

    Refused when a recipient of ours has no active account (the refusal would bounce to the sender, who
    may be the phisher): release it --to someone else. Failure notices of a released copy go to the
    postmaster, never back to an outside sender."""
    from mailbastion.quarantine.release import ReleaseRefused
    from mailbastion.quarantine.store import UnknownQuarantineId

    recipients = _addresses(to)
    api = _release_api(load(config_path), need_spool=True)
    try:
        queue_id = asyncio.run(api.release(qid, actor=_actor(actor), reason=reason, force=force,
                                           recipients=recipients or None))
    except (ReleaseRefused, UnknownQuarantineId) as exc:
        raise Failed(f"release refused: {exc}" if isinstance(exc, ReleaseRefused) else str(exc)) from None
    click.echo(f"released {qid} as queue id {queue_id}")


@quarantine_group.command("delete")
@click.argument("qid")
@config_option
@click.option("--reason", default="", help="why (kept in the audit log)")
@click.option("--actor", default=None, help="who (default: cli:<user>)")
@handle_errors
def delete(qid: str, config_path: Path | None, reason: str, actor: str | None) -> None:
    """Delete a held message for good. Audited."""
    from mailbastion.quarantine.store import UnknownQuarantineId

    api = _release_api(load(config_path), need_spool=False)
    try:
        asyncio.run(api.delete(qid, actor=_actor(actor), reason=reason))
    except UnknownQuarantineId as exc:
        raise Failed(str(exc)) from None
    click.echo(f"deleted {qid}")


@quarantine_group.command("purge")
@config_option
@click.option("--actor", default=None, help="who (default: cli:<user>)")
@handle_errors
def purge(config_path: Path | None, actor: str | None) -> None:
    """Delete messages held longer than antivirus.quarantine.retention_days (each deletion audited).
    Run it daily from cron or a systemd timer."""
    api = _release_api(load(config_path), need_spool=False)
    expired = api.store.expired()

    async def run() -> None:
        for qid in expired:
            await api.delete(qid, actor=_actor(actor), reason=f"retention ({api.store.retention_days} days)")

    asyncio.run(run())
    click.echo(f"purged {len(expired)} message(s)")
