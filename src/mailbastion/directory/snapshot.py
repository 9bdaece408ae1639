"""The directory in memory: every domain, account (state, leaver date, quota; never a password hash) and
alias, read in one transaction together with the directory's generation number.

    snap = DirectorySnapshot.load(conn, recipient_delimiter="+")
    snap.resolve(address, now)          # as Directory.resolve, from memory
    snap.quota("alice@example.org")     # as Directory.mailbox_quota
    snap.dead_aliases(now)              # aliases with a target of ours that cannot receive

Leaver dates are kept as dates and compared with `now` at each question, so a snapshot stays right as
time passes; only a change to the database makes it old, and every change bumps the generation
(`directory_generation`, kept by triggers: see migration 0002).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from mailbastion.core.address import Address, AddressError
from mailbastion.core.ports import Resolution
from mailbastion.directory import resolution
from mailbastion.directory.models import Account, AccountState, Alias, DirectoryGeneration, Domain


@dataclass(frozen=True, slots=True)
class AccountEntry:
    state: AccountState
    deactivate_at: dt.datetime | None  # leaver date: inactive from then on, whatever the state says
    quota_bytes: int | None  # None: the mailbox default

    def is_active(self, now: dt.datetime) -> bool:
        return self.state == AccountState.ACTIVE and (self.deactivate_at is None or self.deactivate_at > now)

    def why_inactive(self, now: dt.datetime) -> str | None:
        if self.is_active(now):
            return None
        if self.state == AccountState.ACTIVE and self.deactivate_at is not None:
            return f"left {self.deactivate_at:%Y-%m-%d %H:%M}"
        return str(self.state)


@dataclass(frozen=True, slots=True)
class DeadAlias:
    """An alias target of ours that cannot receive: mail for it is refused (or, beside other targets,
    lost for this one)."""

    alias: str
    target: str
    why: str  # "disabled", "left 2026-11-30 00:00", "no such address", "alias reaching no active account"


def why_cannot_receive(target: str, lookups: resolution.Lookups, account_of: Callable[[str], AccountEntry | None],
                       now: dt.datetime, delimiter: str = "+") -> str | None:
    """Why the alias target `target` cannot receive mail, or None when it can or is not ours (remote
    targets are the outbound path's business)."""
    try:
        t = resolution.to_address(target)
    except AddressError:
        return "not an address"
    if not lookups.is_local_domain(t.domain):
        return None
    keys = [t.normalized, t.without_tag(delimiter).normalized] if delimiter else [t.normalized]
    for key in dict.fromkeys(keys):
        account = account_of(key)
        if account is not None:
            return account.why_inactive(now)
        if lookups.alias_targets(key):
            return None if resolution.expand(key, lookups, delimiter) else "alias reaching no active account"
    return "no such address"


@dataclass(frozen=True, slots=True)
class DirectorySnapshot:
    generation: int = -1  # -1: nothing loaded yet
    domains: frozenset[str] = frozenset()
    accounts: Mapping[str, AccountEntry] = field(default_factory=dict)
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    recipient_delimiter: str = "+"

    @classmethod
    def load(cls, conn: Connection, *, recipient_delimiter: str = "+") -> DirectorySnapshot:
        """Read everything in one transaction of `conn` (opened here when none is). The generation is read
        first: a change committed during the load makes the rows newer than the number, never older, so
        the next generation check loads again rather than keeping a stale snapshot."""
        if conn.dialect.name == "postgresql" and not conn.in_transaction():
            conn = conn.execution_options(isolation_level="REPEATABLE READ")  # one view of every table
        with conn.begin() if not conn.in_transaction() else contextlib.nullcontext():
            generation = read_generation(conn)
            domains = frozenset(conn.scalars(select(Domain.name)))
            accounts = {row.address: AccountEntry(AccountState(row.state), row.deactivate_at, row.quota_bytes)
                        for row in conn.execute(select(Account.address, Account.state, Account.deactivate_at,
                                                       Account.quota_bytes))}
            aliases: dict[str, list[str]] = {}
            for alias, target in conn.execute(select(Alias.alias, Alias.target).order_by(Alias.id)):
                aliases.setdefault(alias, []).append(target)
        return cls(generation, domains, accounts, {k: tuple(v) for k, v in aliases.items()}, recipient_delimiter)

    def lookups(self, now: dt.datetime) -> resolution.Lookups:
        def is_active(key: str) -> bool:
            account = self.accounts.get(key)
            return account is not None and account.is_active(now)

        return resolution.Lookups(
            is_local_domain=lambda d: d.lower() in self.domains,
            is_active=is_active,
            alias_targets=lambda k: self.aliases.get(k, ()),
        )

    def resolve(self, address: Address | str, now: dt.datetime) -> Resolution:
        """As `Directory.resolve`: never raises for an unknown address, AddressError for a malformed one."""
        return resolution.resolve(address, self.lookups(now), self.recipient_delimiter)

    def quota(self, address: Address | str) -> int | None:
        account = self.accounts.get(resolution.to_address(address).normalized)
        return None if account is None else account.quota_bytes

    def dead_aliases(self, now: dt.datetime, *, domain: str | None = None) -> list[DeadAlias]:
        lookups = self.lookups(now)
        out = []
        for alias in sorted(self.aliases):
            if domain is not None and alias.rpartition("@")[2] != domain.lower():
                continue
            for target in sorted(self.aliases[alias]):
                why = why_cannot_receive(target, lookups, self.accounts.get, now, self.recipient_delimiter)
                if why is not None:
                    out.append(DeadAlias(alias, target, why))
        return out


def read_generation(conn: Connection) -> int:
    """The directory's change counter (0 on a fresh directory)."""
    value = conn.scalar(select(DirectoryGeneration.generation).where(DirectoryGeneration.id == 1))
    return int(value or 0)


__all__ = ["AccountEntry", "DeadAlias", "DirectorySnapshot", "read_generation", "why_cannot_receive"]
