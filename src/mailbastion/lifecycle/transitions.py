"""Dates applied: what the lifecycle scheduler does at each check (issue 13).

    policy = LifecyclePolicy.from_settings(settings)
    done = apply_due(directory, policy)          # [Transition(...)], each one audited
    leave(directory, "bob@example.org", policy)  # a leave now (also what apply_due does at the end date)

At each check, in this order, with the directory's clock (`Directory.now()`):

1. start   pending accounts whose start date has come become active (pending ones without a start date
           wait for an administrator's approval);
2. leave   active or suspended accounts whose end date has passed become `left`: their app passwords and
           portal sessions go, the directory's deactivation listeners hear of it (IMAP kicks), aliases
           pointing at them are re-pointed to the successor (when it can receive) or reported, and with
           `leaver_policy = "forward"` and a successor an alias leaver → successor forwards their mail for
           `forward_days`. The map for the gateway follows from the change (generation bump, export);
3. forward the forwarding alias goes when `forward_days` after the leave have passed;
4. archive `left` (or pre-0006 `disabled`) accounts `archive_after_days` after leaving: the Maildir is
           exported (lifecycle/archive.py), the export verified, then the Maildir removed; `archived`;
5. delete  `archived` accounts `retention_days` after archiving: the archive files are deleted and the
           account `deleted`, its address reserved for `reserve_days` (Directory.add_account refuses it
           until then).

Every transition is one audited change (actor `lifecycle`, the reason saying which date). A failing step
(an archive that cannot be written) is logged and retried at the next check; the others go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailbastion.core.address import Address, AddressError
from mailbastion.directory.models import Account, AccountState, Alias, AppPassword
from mailbastion.directory.portal_models import PortalSession
from mailbastion.directory.resolution import expand
from mailbastion.lifecycle.archive import export_maildir, remove_archive, verify_archive

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings
    from mailbastion.directory.store import Directory

log = logging.getLogger("mailbastion.lifecycle")

ACTOR = "lifecycle"
LEFT = "account.left"
STARTED = "account.started"
FORWARD_ENDED = "account.forward_ended"
ARCHIVED = "account.archived"
DELETED = "account.deleted"


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    leaver_policy: str = "refuse"  # "refuse" | "forward"
    forward_days: int = 30
    archive_after_days: int = 30
    retention_days: int = 365
    archive_dir: Path = Path("archive")
    mailbox_of: Any = None  # Callable[[Address], Path]: the Maildir of an account (MaildirStore.mailbox_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecyclePolicy:
        from mailbastion.mailbox.maildir import MaildirStore

        lc = settings.lifecycle
        store = MaildirStore(settings.path(settings.mailbox.root), junk_folder=settings.mailbox.junk_folder)
        return cls(lc.leaver_policy, lc.forward_days, lc.archive_after_days, lc.retention_days,
                   settings.path(lc.archive_dir), store.mailbox_dir)


@dataclass(frozen=True, slots=True)
class Transition:
    address: str
    action: str  # the audit action: account.started, account.left, ...
    details: dict[str, Any] = field(default_factory=dict)


def _due(directory: Directory, *where: Any) -> list[str]:
    with Session(directory.engine) as s:
        return list(s.scalars(select(Account.address).where(*where).order_by(Account.address)))


def apply_due(directory: Directory, policy: LifecyclePolicy) -> list[Transition]:
    """Apply every date that has come (see the module docstring); return what was done."""
    now = directory.now()
    done: list[Transition] = []

    def attempt(step: str, address: str, fn: Any) -> None:
        try:
            done.append(fn())
        except Exception as exc:  # noqa: BLE001 - one account's failure must not stop the others
            log.error("lifecycle.%s_failed account=%s error=%s: %s (retried at the next check)", step, address,
                      type(exc).__name__, exc)

    for address in _due(directory, Account.state == str(AccountState.PENDING), Account.start_at <= now):
        attempt("start", address, lambda a=address: start(directory, a))
    for address in _due(directory, Account.state.in_([str(AccountState.ACTIVE), str(AccountState.SUSPENDED)]),
                        Account.deactivate_at <= now):
        attempt("leave", address, lambda a=address: leave(directory, a, policy))
    forward_end = now - dt.timedelta(days=policy.forward_days)
    gone = [str(AccountState.LEFT), str(AccountState.ARCHIVED), str(AccountState.DELETED), str(AccountState.DISABLED)]
    with Session(directory.engine) as s:
        forwarding = list(s.scalars(select(Account.address).join(Alias, Alias.alias == Account.address).where(
            Account.state.in_(gone), Account.deactivated_at <= forward_end).distinct()))
    for address in forwarding:
        attempt("forward", address, lambda a=address: end_forward(directory, a))
    archive_at = now - dt.timedelta(days=policy.archive_after_days)
    for address in _due(directory, Account.state.in_([str(AccountState.LEFT), str(AccountState.DISABLED)]),
                        Account.deactivated_at <= archive_at):
        attempt("archive", address, lambda a=address: archive(directory, a, policy))
    delete_at = now - dt.timedelta(days=policy.retention_days)
    for address in _due(directory, Account.state == str(AccountState.ARCHIVED), Account.archived_at <= delete_at):
        attempt("delete", address, lambda a=address: delete_archived(directory, a))
    for t in done:
        log.info("lifecycle.%s account=%s %s", t.action.removeprefix("account."), t.address,
                 " ".join(f"{k}={v}" for k, v in t.details.items()))
    return done


def start(directory: Directory, address: str, *, by: str = ACTOR) -> Transition:
    """A joiner's start date came: pending → active."""
    details: dict[str, Any] = {}
    with directory._change(STARTED, by=by, subject=address, reason="start date reached", details=details) as s:
        acc = directory._account(s, address)
        if acc.state != AccountState.PENDING:
            raise ValueError(f"{address} is {acc.state}, not pending")
        details["start_at"] = acc.start_at.isoformat() if acc.start_at else None
        acc.state, acc.activated_at = str(AccountState.ACTIVE), directory.now()
    return Transition(address, STARTED, details)


def _can_receive(directory: Directory, s: Session, target: str) -> bool:
    """An address outside our domains (the outbound path's business), or one of ours that receives."""
    lookups = directory._lookups(s)
    try:
        domain = _addr(target).domain
    except (AddressError, ValueError):
        return False
    if not lookups.is_local_domain(domain):
        return True
    return lookups.is_active(target) or bool(expand(target, lookups, directory.recipient_delimiter))


def leave(directory: Directory, address: str, policy: LifecyclePolicy, *, by: str = ACTOR,
          reason: str = "end date reached") -> Transition:
    """The account leaves now (see the module docstring, step 2). Raises AccountUnknown, ValueError for an
    account that is not active or suspended."""
    details: dict[str, Any] = {}
    key = _addr(address).normalized
    with directory._change(LEFT, by=by, subject=key, reason=reason, details=details) as s:
        acc = directory._account(s, key)
        if acc.state not in (AccountState.ACTIVE, AccountState.SUSPENDED):
            raise ValueError(f"{key} is {acc.state}: only an active or suspended account can leave")
        now = directory.now()
        ended = acc.deactivate_at if acc.deactivate_at is not None and acc.deactivate_at <= now else now
        acc.state, acc.deactivate_at, acc.deactivated_at = str(AccountState.LEFT), ended, ended
        devices = _count(s.execute(delete(AppPassword).where(AppPassword.account_id == acc.id)))
        sessions = _count(s.execute(delete(PortalSession).where(PortalSession.address == key)))
        s.flush()
        successor = acc.successor if acc.successor and _can_receive(directory, s, acc.successor) else None
        repointed, reported = [], []
        for row in s.scalars(select(Alias).where(Alias.target == key)):
            if successor and successor != row.alias and s.scalar(select(Alias.id).where(
                    Alias.alias == row.alias, Alias.target == successor)) is None:
                row.target = successor
                repointed.append(row.alias)
            elif successor:  # the alias reaches the successor already: this target goes
                s.delete(row)
                repointed.append(row.alias)
            else:
                reported.append(row.alias)
        forward_until = None
        if policy.leaver_policy == "forward" and successor and policy.forward_days > 0:
            forward_until = ended + dt.timedelta(days=policy.forward_days)
            if forward_until > now:
                s.add(Alias(alias=key, target=successor, created_at=now))
            else:
                forward_until = None
        details.update(left_at=ended.isoformat(), successor=acc.successor, app_passwords_revoked=devices,
                       portal_sessions_ended=sessions, aliases_repointed=repointed,
                       aliases_reported=reported, forward_until=forward_until and forward_until.isoformat())
    for alias in reported:
        log.warning("lifecycle.alias_reported alias=%s target=%s: the target has left and has no successor that "
                    "can receive; point the alias elsewhere or remove it", alias, key)
    directory._tell_deactivated(key)
    return Transition(key, LEFT, details)


def end_forward(directory: Directory, address: str, *, by: str = ACTOR) -> Transition:
    """The forwarding period of a leaver is over: its alias to the successor goes (mail is then refused)."""
    details: dict[str, Any] = {}
    with directory._change(FORWARD_ENDED, by=by, subject=address, reason="forwarding period over",
                           details=details) as s:
        targets = [r.target for r in s.scalars(select(Alias).where(Alias.alias == address))]
        s.execute(delete(Alias).where(Alias.alias == address))
        details["targets"] = targets
    return Transition(address, FORWARD_ENDED, details)


def archive(directory: Directory, address: str, policy: LifecyclePolicy, *, by: str = ACTOR) -> Transition:
    """Export the Maildir, verify the export, remove the Maildir: left → archived."""
    now = directory.now()
    maildir = Path(policy.mailbox_of(_addr(address)))
    made = export_maildir(maildir, policy.archive_dir, address, now)
    verify_archive(made.path)
    details: dict[str, Any] = {"file": str(made.path), "sha256": made.sha256, "bytes": made.size,
                               "messages": made.messages}
    try:
        with directory._change(ARCHIVED, by=by, subject=address, reason="archive date reached",
                               details=details) as s:
            acc = directory._account(s, address)
            if acc.state not in (AccountState.LEFT, AccountState.DISABLED):
                raise ValueError(f"{address} is {acc.state}: only a leaver is archived")
            acc.state, acc.archived_at, acc.archive_file = str(AccountState.ARCHIVED), now, str(made.path)
    except BaseException:
        remove_archive(made.path)
        raise
    shutil.rmtree(maildir, ignore_errors=True)
    return Transition(address, ARCHIVED, details)


def delete_archived(directory: Directory, address: str, *, by: str = ACTOR) -> Transition:
    """The retention of an archive is over: the archive files go, archived → deleted (address reserved)."""
    details: dict[str, Any] = {}
    with directory._change(DELETED, by=by, subject=address, reason="retention period over", details=details) as s:
        acc = directory._account(s, address)
        if acc.state != AccountState.ARCHIVED:
            raise ValueError(f"{address} is {acc.state}, not archived")
        now = directory.now()
        acc.state, acc.password_hash = str(AccountState.DELETED), None
        acc.reserved_until = now + directory.reserve_for
        details.update(file=acc.archive_file, reserved_until=acc.reserved_until.isoformat())
        archive_file = acc.archive_file
    if archive_file:
        remove_archive(Path(archive_file))
    return Transition(address, DELETED, details)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)  # a CursorResult for DELETE


def _addr(address: str) -> Address:
    from mailbastion.directory.resolution import to_address

    return to_address(address)


__all__ = ["ACTOR", "LifecyclePolicy", "Transition", "apply_due", "archive", "delete_archived", "end_forward",
           "leave", "start"]
