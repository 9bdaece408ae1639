"""Setting an account's dates and successor (what `account leave`, `account start` and the people import
do); the scheduler (transitions.py) then applies them on time.

    set_dates(directory, "bob@example.org", end_at=when, successor="carol@example.org", by="cli:root",
             reason="HR-1234")

One audited change (`account.dates_changed`, with the old and new values). A start date on an account
that has not started makes it pending until then; clearing a date is `None`; leaving an argument out
(`KEEP`) keeps the stored value.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select

from mailbastion.directory.errors import AccountUnknown
from mailbastion.directory.models import Account, AccountState, Alias, Domain
from mailbastion.directory.resolution import to_address

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()
CHANGED = "account.dates_changed"


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _schedule(directory: Directory, address: str, *, start_at: dt.datetime | None | _Keep = KEEP,
             end_at: dt.datetime | None | _Keep = KEEP, successor: str | None | _Keep = KEEP,
             display_name: str | None | _Keep = KEEP, manager: str | None | _Keep = KEEP,
             by: str, reason: str = "") -> dict[str, Any]:
    """Set what is given; return the changes ({field: [old, new]}, empty when nothing changed, and then
    nothing is written). Raises AccountUnknown, AddressError for a malformed successor, ValueError for a
    successor that is the account itself or an account that has already left; AccountUnknown for a successor in
    our domains that does not exist."""
    key = to_address(address).normalized
    if isinstance(successor, str):
        succ = to_address(successor)
        ours = _is_ours(directory, succ.domain)
        successor = succ.normalized if ours else str(succ)
        if successor == key:
            raise ValueError(f"{key} cannot be its own successor")
        if ours and not _exists(directory, successor):
            raise AccountUnknown(f"successor {successor} is neither an account nor an alias of ours")
    wanted = {"start_at": start_at, "deactivate_at": end_at, "successor": successor, "display_name": display_name,
              "manager": manager}
    changes: dict[str, Any] = {}
    with directory._change(CHANGED, by=by, subject=key, reason=reason, details=changes) as s:
        acc = directory._account(s, key)
        gone = acc.state in (AccountState.LEFT, AccountState.ARCHIVED, AccountState.DELETED, AccountState.DISABLED)
        for name, value in wanted.items():
            if isinstance(value, _Keep) or getattr(acc, name) == value:
                continue
            if gone and name in ("start_at", "deactivate_at"):
                raise ValueError(f"{key} has already left ({acc.state}); its dates can no longer change")
            old = getattr(acc, name)
            changes[name] = [_iso(old) if isinstance(old, dt.datetime) else old,
                             _iso(value) if isinstance(value, dt.datetime) else value]
            setattr(acc, name, value)
        now = directory.now()
        # A start date in the future is an explicit "not before": an active account waits for it again.
        if "start_at" in changes and acc.state == AccountState.ACTIVE and acc.start_at is not None \
                and acc.start_at > now:
            acc.state, acc.activated_at = str(AccountState.PENDING), None
            changes["state"] = ["active", "pending"]
        if not changes:
            raise _Unchanged
    return changes


class _Unchanged(Exception):
    pass


def _exists(directory: Directory, address: str) -> bool:
    from sqlalchemy.orm import Session

    with Session(directory.engine) as s:
        return (s.scalar(select(Account.id).where(Account.address == address)) is not None
                or s.scalar(select(Alias.id).where(Alias.alias == address)) is not None)


def _is_ours(directory: Directory, domain: str) -> bool:
    from sqlalchemy.orm import Session

    with Session(directory.engine) as s:
        return s.scalar(select(Domain.id).where(Domain.name == domain.lower())) is not None


def set_dates(directory: Directory, address: str, **kwargs: Any) -> dict[str, Any]:
    """Set the given fields (keyword arguments of `_schedule`: start_at, end_at, successor, display_name,
    manager, by, reason); return the changes ({field: [old, new]}); {} when nothing changed, and then no
    audit record is written. Raises AccountUnknown, AddressError, ValueError (see `_schedule`)."""
    try:
        return _schedule(directory, address, **kwargs)
    except _Unchanged:
        return {}


__all__ = ["CHANGED", "KEEP", "set_dates"]
