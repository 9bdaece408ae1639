"""`mailbastion account send-as | unsuspend | sending`: who may send as whom, and sending suspended for a
hijacked account (directory/sending.py).

    mailbastion account send-as alice@example.org --grant sales@example.org --reason "team mailbox"
    mailbastion account send-as alice@example.org --revoke sales@example.org --reason "left the team"
    mailbastion account send-as alice@example.org                  # what she may send as
    mailbastion account sending                                    # accounts whose sending is suspended
    mailbastion account unsuspend alice@example.org --reason "password reset after phishing"

    mailbastion submission held                                   # confidential messages kept (no key)
    mailbastion submission release QUEUE_ID --reason "key imported" # the policy again, then relayed

This module adds commands to the `account` group (cli/portal.py, which itself extends cli/directory.py, is
imported first so every `account` command is there). Every change is audited with `--by`. A running server
sees a grant or an unsuspension at the next transaction (it reads the directory each time).
"""

from __future__ import annotations

from pathlib import Path

import click

from mailbastion.cli import lifecycle as _lifecycle  # noqa: F401 - the `account` commands of the lifecycle
from mailbastion.cli import portal as _portal  # noqa: F401 - the `account` commands of the portal
from mailbastion.cli._common import Failed, config_option, handle_errors, load, main_group
from mailbastion.cli.directory import account_group, by_option, directory_errors, open_directory


@account_group.command("send-as")
@click.argument("address")
@click.option("--grant", "grant", metavar="FROM", default=None, help="let ADDRESS send as FROM")
@click.option("--revoke", "revoke", metavar="FROM", default=None, help="take the grant to send as FROM back")
@click.option("--reason", default="", help="why (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def send_as(address: str, grant: str | None, revoke: str | None, reason: str, by: str,
            config_path: Path | None) -> None:
    """Explicit send-as grants (besides the account itself and its aliases)."""
    from mailbastion.directory.sending import GrantUnknown, SendingStore

    if grant and revoke:
        raise Failed("give --grant or --revoke, not both")
    store = SendingStore(open_directory(config_path))
    if grant:
        store.grant(address, grant, by=by, reason=reason)
        click.echo(f"{address} may now send as {grant}")
    elif revoke:
        try:
            store.revoke(address, revoke, by=by, reason=reason)
        except GrantUnknown as exc:
            raise Failed(str(exc)) from None
        click.echo(f"{address} may no longer send as {revoke}")
    senders = sorted(store.allowed_senders(address))
    click.echo(f"{address} may send as: {', '.join(senders)}")


@account_group.command("unsuspend")
@click.argument("address")
@click.option("--reason", required=True, help="why sending may resume (recorded in the audit log)")
@by_option
@config_option
@directory_errors
def unsuspend(address: str, reason: str, by: str, config_path: Path | None) -> None:
    """Lift the sending suspension of a (suspected) hijacked account."""
    from mailbastion.directory.sending import NotSuspended, SendingStore

    try:
        held = SendingStore(open_directory(config_path)).unsuspend(address, reason=reason, by=by)
    except NotSuspended as exc:
        raise Failed(str(exc)) from None
    click.echo(f"sending resumed for {held.account} (suspended since {held.since:%Y-%m-%d %H:%M} UTC: {held.reason})")


@account_group.command("sending")
@config_option
@directory_errors
def sending(config_path: Path | None) -> None:
    """Accounts whose sending is suspended, with why."""
    from mailbastion.directory.sending import SendingStore

    holds = SendingStore(open_directory(config_path)).holds()
    if not holds:
        click.echo("no account has sending suspended")
    for h in holds:
        click.echo(f"{h.account}  since {h.since:%Y-%m-%d %H:%M} UTC by {h.by}: {h.reason}")


@main_group.group("submission")
def submission_group() -> None:
    """Users' outbound mail kept by submission: confidential messages held for lack of a key."""


@submission_group.command("held")
@config_option
@handle_errors
def held(config_path: Path | None) -> None:
    """Confidential messages kept in the outbox's hold/ for recipients without a key."""
    from mailbastion.spool.layout import QueueState, SpoolLayout

    settings = load(config_path)
    layout = SpoolLayout(settings.path(settings.submission.spool_dir))
    ids = layout.ids(QueueState.HOLD) if layout.state_dir(QueueState.HOLD).is_dir() else []
    if not ids:
        click.echo("no message is held")
    for qid in ids:
        record = layout.load(QueueState.HOLD, qid)
        click.echo(f"{qid}  from <{record.sender}> to {', '.join(r.address for r in record.recipients)}  "
                   f"{record.size} bytes")


@submission_group.command("release")
@click.argument("queue_id")
@click.option("--reason", required=True, help="why (recorded in the audit log), e.g. the key now imported")
@by_option
@config_option
@directory_errors
def release(queue_id: str, reason: str, by: str, config_path: Path | None) -> None:
    """Run the encryption policy again on a held message and, if every recipient now has a key, queue its
    encrypted parts (DKIM-signed) for the running server to relay. Never sends the original as it was."""
    import asyncio

    from mailbastion.audit.log import AuditLog
    from mailbastion.auth.keys import KeyStore as DkimKeys
    from mailbastion.crypto.keystore import KeyStore as UserKeys
    from mailbastion.crypto.outbound import OutboundPolicy, StoreKeys
    from mailbastion.crypto.pickup import PickupStore
    from mailbastion.spool.layout import SpoolLayout
    from mailbastion.spool.writer import Spool
    from mailbastion.submission.dkim_signer import DkimSigner
    from mailbastion.submission.protection import Protection
    from mailbastion.submission.release import release_held

    settings = load(config_path)
    directory = open_directory(config_path)
    root = settings.path(settings.submission.spool_dir)
    policy = OutboundPolicy.from_settings(settings, is_local_domain=directory.is_local_domain,
                                          pickup=PickupStore.from_settings(settings))
    signer = DkimSigner(DkimKeys(settings.path(settings.auth.dkim_keys_dir)), domains=settings.auth.signing_domains,
                        algorithms=settings.auth.sign_algorithms) if settings.auth.enabled else None
    spool = Spool(root, min_free_bytes=settings.spool.min_free_bytes)
    try:
        result = asyncio.run(release_held(SpoolLayout(root), spool, Protection(policy, StoreKeys(UserKeys.from_settings(settings))),
                                          signer, queue_id))
    except FileNotFoundError:
        raise Failed(f"{queue_id} is not held (see `mailbastion submission held`)") from None
    if result.refusal:
        raise Failed(f"{queue_id} stays held: {result.refusal}")
    if result.still_held:
        raise Failed(f"{queue_id} stays held: still no key for {', '.join(result.still_held)}")
    AuditLog(settings.audit_url).record("submission.held_released", actor=by, subject=queue_id, reason=reason,
                                        details={"parts": list(result.sent)})
    click.echo(f"{queue_id} released: {len(result.sent)} part(s) queued ({', '.join(result.sent)})")
