"""The directory: our domains, accounts with their states, aliases, and credentials.

Every change is audited through the audit log (`mailbastion/audit/`, a database of its own) before it
commits, so a change is never committed unaudited: in one transaction when the audit log shares the
directory's database, else record first and change second, with a compensating record when the change then
fails to commit (`AuditLog.record_change`). After the commit the address-only recipient map for the gateway
is rewritten (when a path is configured). A plain password never leaves `add_account`/`set_password` except
as the return value of a generated one.

Receiving and logging in both require an ACTIVE account whose leaver date (`deactivate_at`) has not
passed; the lifecycle scheduler (`mailbastion/lifecycle/`) records passed dates as LEFT within a minute and
carries accounts on to ARCHIVED and DELETED. A DELETED account's address stays reserved until its
`reserved_until`; `add_account` then reuses it (the old row goes, audited), and refuses before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from mailbastion.audit.database import same_database
from mailbastion.audit.log import AuditLog
from mailbastion.audit.transfer import moving_to
from mailbastion.core.address import Address, AddressError
from mailbastion.core.ports import Resolution, ResolutionKind
from mailbastion.directory import app_passwords, login, passwords, resolution
from mailbastion.directory import snapshot as memory
from mailbastion.directory.database import as_engine, migrate, write_transaction
from mailbastion.directory.errors import (
    AccountDisabled,
    AccountExists,
    AccountUnknown,
    AddressReserved,
    AliasExists,
    AliasUnknown,
    DirectoryError,
    DomainExists,
    DomainUnknown,
)
from mailbastion.directory.login import LoginResult
from mailbastion.directory.models import Account, AccountState, Alias, AppPassword, Domain
from mailbastion.directory.recipient_map import MapData, write_map

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings


class AuditAction(StrEnum):
    DOMAIN_ADDED = "domain.added"
    ACCOUNT_ADDED = "account.added"
    ACCOUNT_STATE_CHANGED = "account.state_changed"
    ACCOUNT_DEACTIVATION_SCHEDULED = "account.deactivation_scheduled"
    ACCOUNT_DATES_CHANGED = "account.dates_changed"
    ACCOUNT_PASSWORD_CHANGED = "account.password_changed"
    ACCOUNT_QUOTA_CHANGED = "account.quota_changed"
    ALIAS_ADDED = "alias.added"
    ALIAS_REMOVED = "alias.removed"
    APP_PASSWORD_CREATED = "app_password.created"
    APP_PASSWORD_REVOKED = "app_password.revoked"


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What may be shown about an account: never its password hash."""

    address: str
    state: AccountState
    quota_bytes: int | None
    created_at: dt.datetime
    activated_at: dt.datetime | None
    deactivate_at: dt.datetime | None
    deactivated_at: dt.datetime | None
    is_active: bool
    start_at: dt.datetime | None = None
    successor: str | None = None
    display_name: str | None = None
    manager: str | None = None
    archived_at: dt.datetime | None = None
    archive_file: str | None = None
    reserved_until: dt.datetime | None = None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _actor(by: str) -> str:
    if not by or not by.strip():
        raise ValueError("every directory change needs an actor (by=...)")
    return by.strip()


class Directory:
    """The directory store over SQLAlchemy (SQLite file or PostgreSQL URL). Methods are synchronous and
    thread-safe; async callers use `asyncio.to_thread`. Also a `RecipientResolver`.

    `audit` is where changes are recorded: an AuditLog, an engine or a URL (`[audit] url`); None keeps the
    audit log in the directory's own database (one transaction for a change and its record)."""

    def __init__(self, engine_or_url: Engine | str, *, recipient_map: Path | str | None = None,
                 recipient_delimiter: str = "+", migrate_schema: bool = True,
                 clock: Callable[[], dt.datetime] = _utcnow,
                 audit: AuditLog | Engine | str | None = None, reserve_for: dt.timedelta = dt.timedelta(0)) -> None:
        """`reserve_for`: how long a deleted account's address stays reserved ([lifecycle] reserve_days)."""
        self.engine = as_engine(engine_or_url)
        self.recipient_map = Path(recipient_map) if recipient_map is not None else None
        self.recipient_delimiter = recipient_delimiter
        self._now = clock
        self.reserve_for = reserve_for
        self.audit = _audit_log(audit, self.engine)
        # Called with the address after a commit that made an account inactive (see on_deactivated).
        self._deactivated_listeners: list[Callable[[str], None]] = []
        if migrate_schema:
            self.migrate()

    @classmethod
    def create(cls, url: str | Settings, **kwargs: Any) -> Directory:
        """Open (creating and migrating the schema if needed) the directory at `url`, or the one that
        `Settings` configure (with their recipient map path and delimiter)."""
        if not isinstance(url, str):
            return cls.from_settings(url)
        return cls(url, migrate_schema=True, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings) -> Directory:
        return cls(settings.directory_url, recipient_map=settings.path(settings.directory.recipient_map),
                   recipient_delimiter=settings.mailbox.recipient_delimiter, audit=settings.audit_url,
                   clock=settings_clock(settings),
                   reserve_for=dt.timedelta(days=settings.lifecycle.reserve_days))

    def migrate(self) -> None:
        """Both schemas. Revision 0003 moves audit records written before the audit log had a database of its
        own into `self.audit` (see `audit/transfer.py`), so a separate audit schema is made first; in one
        shared database the directory's goes first (its revision 0001 made the audit tables, which the audit
        schema then adopts)."""
        apart = not self.audit.shares_database(self.engine)
        if apart:
            self.audit.migrate()
        with moving_to(self.audit):
            migrate(self.engine)
        if not apart:
            self.audit.migrate()

    def now(self) -> dt.datetime:
        """The directory's clock (aware UTC): what leaver dates are compared with."""
        return self._now()

    # -- plumbing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self, action: AuditAction | str, *, by: str, subject: str, reason: str,
                details: dict[str, Any] | None = None) -> Iterator[Session]:
        """`audited_change`, then the recipient map rewritten (the directory's own tables are in it)."""
        with self.audited_change(action, by=by, subject=subject, reason=reason, details=details) as session:
            yield session
        if self.recipient_map is not None:
            self.export_recipient_map(self.recipient_map)

    @contextlib.contextmanager
    def audited_change(self, action: AuditAction | str, *, by: str, subject: str, reason: str = "",
                       details: dict[str, Any] | None = None) -> Iterator[Session]:
        """One audited write session: what the session changes commits with its audit record
        (`AuditLog.record_change`, the last step before the commit: one transaction when the audit log shares
        this database); a change whose own checks refuse it leaves no record; when the commit fails after the
        record was committed in a separate audit database, a `change.not_committed` record says so. Other
        packages use it for their tables in the directory's database (sending holds and send-as grants, the
        acceptable use policy, training), which are outside the directory generation: it rewrites no
        recipient map (`_change` does). Raises ValueError for an empty `by`, before anything is written."""
        actor = _actor(by)
        receipt = None
        try:
            with write_transaction(self.engine) as conn:
                with Session(bind=conn, expire_on_commit=False) as session:
                    yield session
                    session.flush()
                # Last step before the commit: a change its own checks refused leaves no record.
                receipt = self.audit.record_change(conn, action, actor=actor, subject=subject, reason=reason,
                                                   details=details)
        except BaseException as exc:
            if receipt is not None:  # audited apart, then the commit failed: say so in the audit log
                self.audit.not_committed(receipt, exc)
            raise

    def _domain(self, s: Session, name: str) -> Domain:
        dom = s.scalar(select(Domain).where(Domain.name == name.lower()))
        if dom is None:
            raise DomainUnknown(f"{name} is not one of our domains")
        return dom

    def _account(self, s: Session, address: Address | str) -> Account:
        key = _key(address)
        acc = s.scalar(select(Account).where(Account.address == key))
        if acc is None:
            raise AccountUnknown(f"no account {key}")
        return acc

    def _is_active(self, acc: Account | None) -> bool:
        return (acc is not None and acc.state == AccountState.ACTIVE
                and (acc.deactivate_at is None or acc.deactivate_at > self._now()))

    def _has_left(self, acc: Account) -> bool:
        """Gone for good (not merely pending or suspended): left, archived, disabled, deleted, or past its end
        date. Only then does a refusal name the successor."""
        ended = acc.deactivate_at is not None and acc.deactivate_at <= self._now()
        return acc.state in GONE or (ended and acc.state in (AccountState.ACTIVE, AccountState.SUSPENDED))

    def _info(self, a: Account) -> AccountInfo:
        return AccountInfo(a.address, AccountState(a.state), a.quota_bytes, a.created_at, a.activated_at,
                           a.deactivate_at, a.deactivated_at, self._is_active(a), a.start_at, a.successor,
                           a.display_name, a.manager, a.archived_at, a.archive_file, a.reserved_until)

    # -- domains ----------------------------------------------------------------------------------

    def add_domain(self, name: str, by: str = "", reason: str = "") -> str:
        probe = resolution.to_address(f"postmaster@{name.strip()}")
        if probe.is_literal:
            raise AddressError(f"{name}: an address literal is not a mail domain")
        domain = probe.domain
        with self._change(AuditAction.DOMAIN_ADDED, by=by, subject=domain, reason=reason) as s:
            if s.scalar(select(Domain.id).where(Domain.name == domain)) is not None:
                raise DomainExists(f"domain {domain} exists")
            s.add(Domain(name=domain, created_at=self._now()))
        return domain

    def list_domains(self) -> list[str]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Domain.name).order_by(Domain.name)))

    def is_local_domain(self, domain: str) -> bool:
        with Session(self.engine) as s:
            return s.scalar(select(Domain.id).where(Domain.name == domain.lower())) is not None

    # -- accounts ---------------------------------------------------------------------------------

    def add_account(self, address: Address | str, password: str | None = None, by: str = "", reason: str = "",
                    *, state: AccountState = AccountState.ACTIVE, quota_bytes: int | None = None,
                    start_at: dt.datetime | None = None, end_at: dt.datetime | None = None,
                    display_name: str | None = None, manager: str | None = None) -> str | None:
        """Create an account. With `password=None` a strong one is generated and returned (show it once);
        with a chosen password, returns None (raises PasswordTooWeak below the minimum). A `start_at` in the
        future makes it PENDING until then (the lifecycle scheduler activates it); `end_at` is its leave
        date. Raises DomainUnknown, AccountExists (also when an alias has that address), AddressReserved
        (a deleted account's address before its reservation ends: the error names the date)."""
        addr = _mailbox(address)
        generated = passwords.generate_password() if password is None else None
        if password is not None:
            passwords.check_strength(password)
        digest = passwords.hash_password(password if password is not None else generated)  # type: ignore[arg-type]
        key = addr.normalized
        details: dict[str, Any] = {"state": str(state), "quota_bytes": quota_bytes,
                                   "password": "generated" if generated else "chosen",
                                   "start_at": start_at and start_at.isoformat(), "end_at": end_at and end_at.isoformat()}
        with self._change(AuditAction.ACCOUNT_ADDED, by=by, subject=key, reason=reason, details=details) as s:
            dom = self._domain(s, addr.domain)
            now = self._now()
            if start_at is not None and start_at > now and state == AccountState.ACTIVE:
                state = AccountState.PENDING
                details["state"] = str(state)
            old = s.scalar(select(Account).where(Account.address == key))
            if old is not None:  # the record says so: the address was someone else's
                until, dropped = self._reuse(s, old, now)
                details["reused_address_reserved_until"] = until.isoformat()
                details["aliases_to_the_previous_account_removed"] = dropped
                details["state"] = str(state)
            if s.scalar(select(Alias.id).where(Alias.alias == key)) is not None:
                raise AccountExists(f"{key} is an alias")
            s.add(Account(address=key, domain_id=dom.id, password_hash=digest, state=str(state), quota_bytes=quota_bytes,
                          created_at=now, activated_at=now if state == AccountState.ACTIVE else None,
                          start_at=start_at, deactivate_at=end_at, display_name=display_name, manager=manager))
        return generated

    def reserved_until(self, acc: Account) -> dt.datetime:
        """Until when a DELETED account's address stays reserved (accounts deleted before migration 0006
        count from when they stopped)."""
        if acc.reserved_until is not None:
            return acc.reserved_until
        return (acc.deactivated_at or acc.created_at) + self.reserve_for

    def _reuse(self, s: Session, old: Account, now: dt.datetime) -> tuple[dt.datetime, list[str]]:
        """Make way for a new account at a deleted account's address once its reservation ended: the old
        row, its forwarding alias, its portal rows and the aliases still pointing at it go (the new person
        must not receive the old one's group mail; the new account's audit record lists them). Returns the
        reservation's end and those aliases. Raises AccountExists, or AddressReserved naming the date."""
        if old.state != AccountState.DELETED:
            raise AccountExists(f"account {old.address} exists ({old.state})")
        until = self.reserved_until(old)
        if until > now:
            raise AddressReserved(f"{old.address} belonged to an account deleted on {_day(old.deactivated_at)}; "
                                  f"it is reserved until {until:%Y-%m-%d %H:%M} UTC and cannot be reused before")
        from mailbastion.directory.portal_models import PortalAccount, PortalEnrolToken, PortalSession

        for model in (PortalAccount, PortalSession, PortalEnrolToken):
            s.execute(delete(model).where(model.address == old.address))
        s.execute(delete(Alias).where(Alias.alias == old.address))
        pointing = list(s.scalars(select(Alias).where(Alias.target == old.address)))
        for row in pointing:
            s.delete(row)
        s.delete(old)
        s.flush()
        return until, sorted(r.alias for r in pointing)

    def account(self, address: Address | str) -> AccountInfo | None:
        with Session(self.engine) as s:
            acc = s.scalar(select(Account).where(Account.address == _key(address)))
            return None if acc is None else self._info(acc)

    def is_active(self, address: Address | str) -> bool:
        """May this account receive mail and log in (send) now?"""
        info = self.account(address)
        return info is not None and info.is_active

    def list_accounts(self, *, domain: str | None = None, state: AccountState | None = None) -> list[AccountInfo]:
        query = select(Account).order_by(Account.address)
        if domain is not None:
            query = query.join(Domain).where(Domain.name == domain.lower())
        if state is not None:
            query = query.where(Account.state == str(state))
        with Session(self.engine) as s:
            return [self._info(a) for a in s.scalars(query)]

    def set_state(self, address: Address | str, state: AccountState, by: str = "", reason: str = "") -> None:
        """Move an account to `state`, stamping activated_at / deactivated_at. DELETED is final (and drops
        the password hash). Raises AccountUnknown, DirectoryError for a change out of DELETED."""
        key, state = _key(address), AccountState(state)
        with self._change(AuditAction.ACCOUNT_STATE_CHANGED, by=by, subject=key, reason=reason,
                          details={"state": str(state)}) as s:
            acc = self._account(s, key)
            if acc.state == AccountState.DELETED and state != AccountState.DELETED:
                raise DirectoryError(f"account {key} is deleted; deleted accounts stay deleted")
            now = self._now()
            if state == AccountState.ACTIVE:
                leaves_later = acc.deactivate_at is not None and acc.deactivate_at > now
                acc.activated_at, acc.deactivated_at = now, None
                acc.deactivate_at = acc.deactivate_at if leaves_later else None
            elif state in GONE:
                acc.deactivated_at = acc.deactivated_at or now
                if state == AccountState.DELETED:
                    acc.password_hash = None
                    acc.reserved_until = acc.reserved_until or now + self.reserve_for
            acc.state = str(state)
            if state in GONE - {AccountState.DISABLED}:  # a leaver's devices stop with the account (issue 13)
                s.execute(delete(AppPassword).where(AppPassword.account_id == acc.id))
        if state != AccountState.ACTIVE:
            self._tell_deactivated(key)

    def on_deactivated(self, listener: Callable[[str], None]) -> None:
        """Call `listener(address)` after this Directory commits a state change that leaves an account
        inactive (e.g. the IMAP service closes its sessions at once). Changes made by other processes
        (the command line) are not seen here: readers of the directory poll for those too. A listener
        must not raise; if it does, the error is logged and the change stands."""
        self._deactivated_listeners.append(listener)

    def _tell_deactivated(self, key: str) -> None:
        for listener in self._deactivated_listeners:
            try:
                listener(key)
            except Exception:  # the change is committed; a listener's failure must not undo it
                logging.getLogger("mailbastion.directory").exception("deactivation listener failed for %s", key)

    def deactivate(self, address: Address | str, by: str = "", reason: str = "",
                   *, at: dt.datetime | None = None) -> None:
        """A leaver: with `at` in the future, schedule it (the account stops receiving and logging in at that
        moment, the lifecycle scheduler or `deactivate_due()` then records it as LEFT); otherwise LEFT now."""
        if at is None or at <= self._now():
            self.set_state(address, AccountState.LEFT, by, reason)
            return
        key = _key(address)
        with self._change(AuditAction.ACCOUNT_DEACTIVATION_SCHEDULED, by=by, subject=key, reason=reason,
                          details={"deactivate_at": at.isoformat()}) as s:
            self._account(s, key).deactivate_at = at

    def deactivate_due(self, by: str = "lifecycle", reason: str = "leaver date reached") -> list[str]:
        """Every active or suspended account whose leaver date has passed becomes LEFT; returns their
        addresses. (The lifecycle scheduler does this and what follows a leave: lifecycle/transitions.py.)"""
        with Session(self.engine) as s:
            due = list(s.scalars(select(Account.address).where(
                Account.state.in_([str(AccountState.ACTIVE), str(AccountState.SUSPENDED)]),
                Account.deactivate_at <= self._now())))
        for address in due:
            self.set_state(address, AccountState.LEFT, by, reason)
        return due

    def set_password(self, address: Address | str, password: str | None = None, by: str = "",
                     reason: str = "") -> str | None:
        """Replace the password (generated and returned when None)."""
        generated = passwords.generate_password() if password is None else None
        if password is not None:
            passwords.check_strength(password)
        digest = passwords.hash_password(password if password is not None else generated)  # type: ignore[arg-type]
        key = _key(address)
        with self._change(AuditAction.ACCOUNT_PASSWORD_CHANGED, by=by, subject=key, reason=reason) as s:
            acc = self._account(s, key)
            if acc.state == AccountState.DELETED:
                raise AccountDisabled(f"account {key} is deleted")
            acc.password_hash = digest
        return generated

    def set_quota(self, address: Address | str, quota_bytes: int | None, by: str = "", reason: str = "") -> None:
        key = _key(address)
        with self._change(AuditAction.ACCOUNT_QUOTA_CHANGED, by=by, subject=key, reason=reason,
                          details={"quota_bytes": quota_bytes}) as s:
            self._account(s, key).quota_bytes = quota_bytes

    def mailbox_quota(self, address: Address | str) -> int | None:
        """The account's own quota in bytes, or None for the configured default."""
        info = self.account(address)
        return None if info is None else info.quota_bytes

    def verify_password(self, address: Address | str, password: str) -> bool:
        """True only for an ACTIVE account and the right password. Same cost whether or not the account
        exists. Upgrades the hash transparently when the argon2 parameters changed."""
        try:
            key = _key(address)
        except AddressError:
            key = ""
        with Session(self.engine) as s:
            acc = s.scalar(select(Account).where(Account.address == key)) if key else None
            ok = passwords.verify(acc.password_hash if acc else None, password)
            if not (ok and acc is not None and self._is_active(acc)):
                return False
            if acc.password_hash and passwords.needs_rehash(acc.password_hash):
                acc.password_hash = passwords.hash_password(password)
                s.commit()
            return True

    def verify_login(self, address: Address | str, secret: str) -> LoginResult:
        """Main password or app password, active account only (directory/login.py)."""
        return login.verify_login(self, str(address), secret)

    # -- app passwords (directory/app_passwords.py) ------------------------------------------------

    def add_app_password(self, address: Address | str, name: str, by: str = "",
                         reason: str = "") -> app_passwords.NewAppPassword:
        return app_passwords.add(self, str(address), name, by=by, reason=reason)

    def list_app_passwords(self, address: Address | str) -> list[app_passwords.AppPasswordInfo]:
        return app_passwords.listed(self, str(address))

    def revoke_app_password(self, address: Address | str, name: str | None, by: str = "",
                            reason: str = "") -> list[str]:
        """Revoke the device `name` (every one when None); returns the names revoked."""
        return app_passwords.revoke(self, str(address), name, by=by, reason=reason)

    # -- aliases ----------------------------------------------------------------------------------

    def add_alias(self, alias: Address | str, target: Address | str, by: str = "", reason: str = "") -> None:
        """`alias` (in one of our domains, not an account) delivers to `target`; several targets per alias
        are several calls. A local target must exist (account or alias); remote targets are kept as given."""
        a, t = _mailbox(alias), resolution.to_address(target)
        key = a.normalized
        with self._change(AuditAction.ALIAS_ADDED, by=by, subject=key, reason=reason, details={"target": str(t)}) as s:
            self._domain(s, a.domain)
            if s.scalar(select(Account.id).where(Account.address == key)) is not None:
                raise AccountExists(f"{key} is an account, not an alias")
            local_target = s.scalar(select(Domain.id).where(Domain.name == t.domain)) is not None
            tkey = t.normalized if local_target else str(t)
            if local_target:
                base = t.without_tag(self.recipient_delimiter).normalized if self.recipient_delimiter else tkey
                known = any(s.scalar(select(Account.id).where(Account.address == k)) is not None
                            or s.scalar(select(Alias.id).where(Alias.alias == k)) is not None for k in {tkey, base})
                if not known:
                    raise AccountUnknown(f"alias target {tkey} does not exist")
                why = memory.why_cannot_receive(tkey, self._lookups(s), lambda k: self._entry(s, k), self._now(),
                                         self.recipient_delimiter)
                if why is not None:  # mail for the alias would be refused: say so now, not at the first message
                    raise AccountDisabled(f"alias target {tkey} cannot receive mail ({why})")
            if s.scalar(select(Alias.id).where(Alias.alias == key, Alias.target == tkey)) is not None:
                raise AliasExists(f"alias {key} -> {tkey} exists")
            s.add(Alias(alias=key, target=tkey, created_at=self._now()))

    def remove_alias(self, alias: Address | str, target: Address | str | None = None, by: str = "",
                     reason: str = "") -> None:
        key = _key(alias)
        with self._change(AuditAction.ALIAS_REMOVED, by=by, subject=key, reason=reason,
                          details={"target": None if target is None else str(target)}) as s:
            rows = list(s.scalars(select(Alias).where(Alias.alias == key)))
            if target is not None:
                t = resolution.to_address(target)
                rows = [r for r in rows if r.target in (t.normalized, str(t))]
            if not rows:
                raise AliasUnknown(f"no alias {key}" + (f" -> {target}" if target is not None else ""))
            for r in rows:
                s.delete(r)

    def list_aliases(self) -> list[tuple[str, str]]:
        with Session(self.engine) as s:
            return [(r.alias, r.target) for r in s.scalars(select(Alias).order_by(Alias.alias, Alias.target))]

    def dead_aliases(self, *, domain: str | None = None) -> list[memory.DeadAlias]:
        """Aliases (of `domain`, or all) with a target of ours that cannot receive: an inactive account, a
        removed address, an alias reaching no active account. Remote targets are not judged."""
        return self.read_all().dead_aliases(self._now(), domain=domain)

    def read_all(self) -> memory.DirectorySnapshot:
        """Every domain, account (no password hash) and alias, from one read transaction."""
        with self.engine.connect() as conn:
            return memory.DirectorySnapshot.load(conn, recipient_delimiter=self.recipient_delimiter)

    def _entry(self, s: Session, key: str) -> memory.AccountEntry | None:
        acc = s.scalar(select(Account).where(Account.address == key))
        return None if acc is None else memory.AccountEntry(AccountState(acc.state), acc.deactivate_at, acc.quota_bytes)

    def _lookups(self, s: Session) -> resolution.Lookups:
        return resolution.Lookups(
            is_local_domain=lambda d: s.scalar(select(Domain.id).where(Domain.name == d.lower())) is not None,
            is_active=lambda k: self._is_active(s.scalar(select(Account).where(Account.address == k))),
            alias_targets=lambda k: list(s.scalars(select(Alias.target).where(Alias.alias == k))),
        )

    # -- resolution and the gateway's map ---------------------------------------------------------

    def resolve(self, address: Address | str) -> Resolution:
        """LOCAL (an active account; `address` is its mailbox, untagged, lower-case), ALIAS (final targets),
        UNKNOWN_USER (also inactive accounts) or UNKNOWN_DOMAIN. Raises AddressError for a malformed one."""
        with Session(self.engine) as s:
            return resolution.resolve(address, self._lookups(s), self.recipient_delimiter)

    def snapshot(self) -> MapData:
        """Everything the gateway may know, from one read transaction: domains, active addresses, aliases
        expanded to final targets."""
        with Session(self.engine) as s, s.begin():
            domains = frozenset(s.scalars(select(Domain.name)))
            active = frozenset(a.address for a in s.scalars(select(Account)) if self._is_active(a))
            leavers = {a.address: a.successor for a in s.scalars(select(Account).where(Account.successor.is_not(None)))
                       if a.successor and self._has_left(a)}
            raw: dict[str, list[str]] = {}
            for r in s.scalars(select(Alias)):
                raw.setdefault(r.alias, []).append(r.target)
        full = MapData(domains, active, {k: tuple(v) for k, v in raw.items()}, self.recipient_delimiter)
        expanded = {k: resolution.expand(k, full.lookups(), self.recipient_delimiter) for k in raw}
        return MapData(domains, active, {k: v for k, v in expanded.items() if v}, self.recipient_delimiter,
                       leavers=leavers)

    def export_recipient_map(self, path: Path | str | None = None) -> Path:
        """Write the address-only map atomically to `path` (default: the configured one)."""
        target = Path(path) if path is not None else self.recipient_map
        if target is None:
            raise ValueError("no recipient map path configured")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Snapshot and write under one lock (threads and processes alike): two changes that export at
        # once can then not leave the older snapshot as the last file written.
        fd = os.open(target.parent / f".{target.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            snap = self.snapshot()
            write_map(target, domains=snap.domains, addresses=snap.addresses, aliases=snap.aliases,
                      recipient_delimiter=snap.recipient_delimiter, leavers=snap.leavers)
        finally:
            os.close(fd)
        return target


def _audit_log(audit: AuditLog | Engine | str | None, directory: Engine) -> AuditLog:
    """The audit log to record in; on the directory's own engine when both name the same database."""
    if isinstance(audit, AuditLog):
        return audit
    if audit is None or same_database(audit, directory):
        return AuditLog(directory, migrate_schema=False)
    return AuditLog(audit, migrate_schema=False)


GONE = frozenset({AccountState.LEFT, AccountState.ARCHIVED, AccountState.DISABLED, AccountState.DELETED})


def settings_clock(settings: Settings) -> Callable[[], dt.datetime]:
    """The clock of a deployment: the system's, or (a testing aid, reported by config.weakened) the system's
    moved by `[lifecycle] testing_clock_offset_file`."""
    from mailbastion.core.clock import OffsetClock, system_clock

    offset = settings.lifecycle.testing_clock_offset_file
    return OffsetClock(settings.path(offset)) if offset else system_clock


def _day(value: dt.datetime | None) -> str:
    return "an unknown date" if value is None else f"{value:%Y-%m-%d}"


def _key(address: Address | str) -> str:
    return resolution.to_address(address).normalized


def _mailbox(address: Address | str) -> Address:
    """An address we are willing to host: no quoted local part, no address literal, no routing characters."""
    addr = resolution.to_address(address)
    if addr.is_quoted or addr.is_literal or addr.has_route_chars:
        raise AddressError(f"{address}: not a mailbox address we host (quoted, literal or routing characters)")
    return addr


__all__ = ["GONE", "AccountInfo", "AuditAction", "Directory", "ResolutionKind", "settings_clock"]
