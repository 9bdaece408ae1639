"""Assignments and their results, in the directory database (migration 0009_training).

    store = TrainingStore(directory)
    store.assign(["alice@example.org"], "phishing", due_at=..., by="cli:root", reason="annual")   # -> [new]
    store.assign_missing(modules, due_days=30, by="training:joiners")  # every active account, mandatory ones
    store.record_attempt("alice@example.org", module, grade)           # attempts, score, completed_at
    store.assignments(address="alice@example.org")                     # [AssignmentView]
    store.members("staff")                                             # active accounts of a group alias

Time is the directory's clock (`Directory.now()`, injectable). Each change is written with its audit record
in one transaction (`training.assigned`, `training.completed`, `training.attempt`); reminders are recorded on
the row (`reminded_at`) and in the log only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbastion.directory.database import write_transaction
from mailbastion.directory.models import Account, AccountState, Alias
from mailbastion.training.models import TrainingAssignment

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory
    from mailbastion.training.modules import Grade

__all__ = ["AssignmentView", "TrainingStore", "norm"]


def norm(address: str) -> str:
    from mailbastion.directory.resolution import to_address

    return to_address(address).normalized


@dataclass(frozen=True, slots=True)
class AssignmentView:
    address: str
    module: str
    assigned_at: dt.datetime
    due_at: dt.datetime
    assigned_by: str
    reason: str
    attempts: int
    score: int | None
    completed_at: dt.datetime | None
    reminded_at: dt.datetime | None

    def overdue(self, now: dt.datetime) -> bool:
        return self.completed_at is None and self.due_at <= now

    def state(self, now: dt.datetime) -> str:
        """"completed" | "overdue" | "failed" (tried, not passed, not yet due) | "assigned"."""
        if self.completed_at is not None:
            return "completed"
        if self.due_at <= now:
            return "overdue"
        return "failed" if self.attempts else "assigned"


def _view(row: TrainingAssignment) -> AssignmentView:
    return AssignmentView(row.address, row.module, row.assigned_at, row.due_at, row.assigned_by, row.reason,
                          row.attempts, row.score, row.completed_at, row.reminded_at)


class TrainingStore:
    """Thread-safe (each call opens its own session). Raises SQLAlchemyError when the database fails."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.engine = directory.engine

    def now(self) -> dt.datetime:
        return self.directory.now()

    # -- who ----------------------------------------------------------------------------------------

    def active_accounts(self) -> list[str]:
        with Session(self.engine) as s:
            return sorted(s.scalars(select(Account.address).where(Account.state == AccountState.ACTIVE)))

    def members(self, group: str) -> list[str]:
        """Active accounts reached by the group alias `group` (an address, or a local part: that alias in
        every domain of ours), through aliases of aliases up to four levels. Raises KeyError for no group."""
        with Session(self.engine) as s:
            pairs = list(s.execute(select(Alias.alias, Alias.target)))
            active = set(s.scalars(select(Account.address).where(Account.state == AccountState.ACTIVE)))
        targets: dict[str, set[str]] = {}
        for alias, target in pairs:
            targets.setdefault(alias, set()).add(target)
        if "@" in group:
            start = {norm(group)}
        else:
            start = {a for a in targets if a.partition("@")[0] == group.lower()}
        start &= set(targets)
        if not start:
            raise KeyError(f"no group (alias) {group!r} in the directory")
        found: set[str] = set()
        frontier, seen = set(start), set(start)
        for _ in range(4):
            nxt: set[str] = set()
            for alias in frontier:
                for t in targets.get(alias, ()):
                    if t in active:
                        found.add(t)
                    elif t in targets and t not in seen:
                        nxt.add(t)
                        seen.add(t)
            frontier = nxt
        return sorted(found)

    def groups_of(self) -> dict[str, list[str]]:
        """account -> the group aliases that reach it directly (for the per-group report)."""
        out: dict[str, list[str]] = {}
        with Session(self.engine) as s:
            for alias, target in s.execute(select(Alias.alias, Alias.target).order_by(Alias.alias)):
                out.setdefault(target, []).append(alias)
        return out

    # -- assignments --------------------------------------------------------------------------------

    def assign(self, addresses: Iterable[str], module: str, *, due_at: dt.datetime, by: str, reason: str,
               reopen: bool = False) -> list[str]:
        """Assign `module` to each address not already holding it; returns those newly assigned. With
        `reopen` an existing assignment is opened again (not completed, new due date): a click in a
        phishing simulation sends the person back to the module."""
        now = self.now()
        keys = list(dict.fromkeys(norm(a) for a in addresses))
        if not keys:
            return []
        done: list[str] = []
        with self.directory.audited_change("training.assigned", by=by, subject=module, reason=reason,
                                           details={"due": due_at.isoformat(timespec="seconds"),
                                                    "accounts": len(keys)}) as s:
            rows = {r.address: r for r in s.scalars(select(TrainingAssignment).where(
                TrainingAssignment.module == module, TrainingAssignment.address.in_(keys)))}
            for key in keys:
                row = rows.get(key)
                if row is None:
                    s.add(TrainingAssignment(address=key, module=module, assigned_at=now, due_at=due_at,
                                             assigned_by=by, reason=reason[:200], attempts=0))
                    done.append(key)
                elif reopen:
                    row.completed_at, row.due_at, row.reminded_at = None, due_at, None
                    row.assigned_at, row.assigned_by, row.reason = now, by, reason[:200]
                    done.append(key)
        return done

    def assign_missing(self, modules: Sequence[str], *, due_days: int, by: str = "training:joiners",
                       reason: str = "mandatory training") -> dict[str, list[str]]:
        """Every active account lacking one of `modules` gets it, due `due_days` from now: run every scheduler
        check, a joiner gets its training within one check of becoming active."""
        due = self.now() + dt.timedelta(days=due_days)
        out: dict[str, list[str]] = {}
        with Session(self.engine) as s:
            accounts = list(s.scalars(select(Account.address).where(Account.state == AccountState.ACTIVE)))
            have = set(s.execute(select(TrainingAssignment.address, TrainingAssignment.module)
                                 .where(TrainingAssignment.module.in_(list(modules)))))
        for module in modules:
            missing = [a for a in accounts if (a, module) not in have]
            new = self.assign(missing, module, due_at=due, by=by, reason=reason) if missing else []
            if new:
                out[module] = new
        return out

    def unassign(self, address: str, module: str, *, by: str, reason: str) -> bool:
        with self.directory.audited_change("training.unassigned", by=by, subject=norm(address), reason=reason,
                                           details={"module": module}) as s:
            row = s.scalar(select(TrainingAssignment).where(TrainingAssignment.address == norm(address),
                                                            TrainingAssignment.module == module))
            if row is None:
                return False
            s.delete(row)
        return True

    def assignment(self, address: str, module: str) -> AssignmentView | None:
        with Session(self.engine) as s:
            row = s.scalar(select(TrainingAssignment).where(TrainingAssignment.address == norm(address),
                                                            TrainingAssignment.module == module))
            return _view(row) if row is not None else None

    def assignments(self, *, address: str | None = None, module: str | None = None) -> list[AssignmentView]:
        q = select(TrainingAssignment).order_by(TrainingAssignment.address, TrainingAssignment.due_at)
        if address is not None:
            q = q.where(TrainingAssignment.address == norm(address))
        if module is not None:
            q = q.where(TrainingAssignment.module == module)
        with Session(self.engine) as s:
            return [_view(r) for r in s.scalars(q)]

    def record_attempt(self, address: str, module: str, result: Grade) -> AssignmentView:
        """One quiz attempt: the score is kept, a pass completes the assignment (the first pass's time stays).
        A failed attempt may be retaken. Raises KeyError when the module is not assigned to `address`."""
        key = norm(address)
        action = "training.completed" if result.passed else "training.attempt"
        with self.directory.audited_change(action, by=f"portal:{key}", subject=key, reason="quiz",
                                           details={"module": module, "score": result.score,
                                                    "passed": result.passed}) as s:
            row = s.scalar(select(TrainingAssignment).where(TrainingAssignment.address == key,
                                                            TrainingAssignment.module == module))
            if row is None:
                raise KeyError(f"{module} is not assigned to {key}")
            row.attempts += 1
            row.score = result.score
            if result.passed and row.completed_at is None:
                row.completed_at = self.now()
            view = _view(row)
        return view

    def mark_reminded(self, address: str, module: str, when: dt.datetime) -> None:
        with write_transaction(self.engine) as conn, Session(bind=conn) as s:
            row = s.scalar(select(TrainingAssignment).where(TrainingAssignment.address == norm(address),
                                                            TrainingAssignment.module == module))
            if row is not None:
                row.reminded_at = when
                s.flush()
