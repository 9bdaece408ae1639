"""`mailbastion people import FILE.csv`: the HR export as a source of truth for joiners, changes and leavers.

    rows = read_people(path)                        # raises PeopleFileError naming the line
    plan = plan_import(directory, rows)             # what would change: plan.lines() for --dry-run
    applied = apply_import(directory, plan, policy, by="cli:root", reason="HR export 2026-12-02")

The file is CSV with a header naming the columns `address, name, start, end, manager, groups` (only
`address` is required; dates are YYYY-MM-DD or ISO 8601, UTC when no zone is given; `groups` are alias
names in the account's domain separated by `;`). For each row:

- join    no account at the address (or a deleted one whose reservation has ended): the account is added,
          pending until `start` when that is in the future, with no password anyone knows; the command
          line prints a one-time enrolment link for it (never a password);
- change  name, manager, start or end differ (a column the file does not have changes nothing; an empty
          cell clears the value), or its groups differ: the dates are set (the scheduler then applies them on
          time), the account added to the groups its row lists and removed from the file's groups it no
          longer lists;
- leave   `end` has passed and the account is still active or suspended: it leaves now (as the scheduler
          would: lifecycle/transitions.py `leave`).

Accounts missing from the file are reported, never changed: an export may be partial. The file manages the
groups it names: a group that some row lists has exactly the members whose rows list it (among the people
in the file); aliases no row names (an administrator's own) are never touched, and a file without a
`groups` column changes no membership. Every change is audited (through the directory's audited changes).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbastion.core.address import AddressError
from mailbastion.directory.models import Account, AccountState, Alias
from mailbastion.directory.resolution import to_address
from mailbastion.lifecycle.dates import set_dates

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory
    from mailbastion.lifecycle.transitions import LifecyclePolicy

COLUMNS = ("address", "name", "start", "end", "manager", "groups")
MAX_ROWS = 100_000


class PeopleFileError(ValueError):
    """The file cannot be imported as it is (the message names the line)."""


@dataclass(frozen=True, slots=True)
class Person:
    line: int
    address: str
    name: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    manager: str | None
    groups: tuple[str, ...]
    columns: frozenset[str] = frozenset(COLUMNS)  # those the file has: a missing column changes nothing


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # "join" | "change" | "leave" | "unchanged" | "left" | "absent"
    address: str
    person: Person | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    new_groups: tuple[str, ...] = ()
    note: str = ""
    old_groups: tuple[str, ...] = ()  # groups the file manages that this row no longer lists

    def line(self) -> str:
        mark = {"join": "+", "change": "~", "leave": "-"}.get(self.kind, " ")
        parts = [f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in self.changes.items()]
        parts += [f"group +{g}" for g in self.new_groups]
        parts += [f"group -{g}" for g in self.old_groups]
        text = f"{mark} {self.kind:9} {self.address}"
        return text + (f": {', '.join(parts)}" if parts else "") + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]

    def of(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]

    def lines(self) -> list[str]:
        order = ("join", "change", "leave", "left", "absent")
        out = [s.line() for k in order for s in self.of(k)]
        counts = ", ".join(f"{len(self.of(k))} {k}" for k in ("join", "change", "leave"))
        return [*out, f"{counts}; {len(self.of('unchanged'))} unchanged"]


def _show(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def _date(text: str, line: int, column: str) -> dt.datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise PeopleFileError(f"line {line}: {column} {text!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def read_people(path: Path) -> list[Person]:
    """Parse the file. Raises PeopleFileError (one line naming the row and column), OSError."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        if "address" not in header:
            raise PeopleFileError(f"{path}: the first line must name the columns, with at least 'address' "
                                  f"(known: {', '.join(COLUMNS)})")
        unknown = [h for h in header if h not in COLUMNS]
        if unknown:
            raise PeopleFileError(f"{path}: unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
        reader.fieldnames = header
        people: list[Person] = []
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if len(people) >= MAX_ROWS:
                raise PeopleFileError(f"{path}: more than {MAX_ROWS} rows")
            cells = {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)}
            if not any(cells.values()):
                continue
            try:
                address = to_address(cells.get("address", "")).normalized
            except (AddressError, ValueError) as exc:
                raise PeopleFileError(f"line {line}: address {cells.get('address', '')!r}: {exc}") from None
            if address in seen:
                raise PeopleFileError(f"line {line}: {address} is listed twice (first on line {seen[address]})")
            seen[address] = line
            start, end = _date(cells.get("start", ""), line, "start"), _date(cells.get("end", ""), line, "end")
            if start and end and end <= start:
                raise PeopleFileError(f"line {line}: {address} ends before it starts")
            listed = cells.get("groups", "").replace("|", ";").split(";")
            groups = tuple(dict.fromkeys(g.strip().lower() for g in listed if g.strip()))
            people.append(Person(line, address, cells.get("name") or None, start, end, cells.get("manager") or None,
                                 groups, frozenset(header)))
    return people


def _group_address(group: str, domain: str) -> str:
    return to_address(group if "@" in group else f"{group}@{domain}").normalized


def plan_import(directory: Directory, people: list[Person]) -> Plan:
    """The difference between the file and the directory, now (`Directory.now()`)."""
    now = directory.now()
    steps: list[Step] = []
    with Session(directory.engine) as s:
        accounts = {a.address: a for a in s.scalars(select(Account))}
        members: dict[str, set[str]] = {}
        for alias in s.scalars(select(Alias)):
            members.setdefault(alias.target, set()).add(alias.alias)
        domains = set(directory.list_domains())
        managed = {_group_address(g, p.address.rpartition("@")[2]) for p in people if "groups" in p.columns
                   for g in p.groups}  # the groups this file speaks for
        for p in people:
            domain = p.address.rpartition("@")[2]
            if domain not in domains:
                raise PeopleFileError(f"line {p.line}: {domain} is not one of our domains")
            groups = tuple(_group_address(g, domain) for g in p.groups)
            acc = accounts.get(p.address)
            if acc is None or (acc.state == AccountState.DELETED and directory.reserved_until(acc) <= now):
                note = "pending until " + _show(p.start) if p.start and p.start > now else "active now"
                if p.end and p.end <= now:
                    note = "its end date has passed: not added"
                    steps.append(Step("left", p.address, p, note=note))
                    continue
                steps.append(Step("join", p.address, p, new_groups=groups, note=note))
                continue
            if acc.state in (AccountState.LEFT, AccountState.ARCHIVED, AccountState.DELETED, AccountState.DISABLED):
                steps.append(Step("left", p.address, p, note=f"{acc.state} on {_show(acc.deactivated_at)}: not changed"))
                continue
            changes: dict[str, tuple[Any, Any]] = {}
            for name, old, new in (("name", acc.display_name, p.name), ("manager", acc.manager, p.manager),
                                   ("start", acc.start_at, p.start), ("end", acc.deactivate_at, p.end)):
                if name in p.columns and old != new:
                    changes[name] = (old, new)
            new_groups = tuple(g for g in groups if g not in members.get(p.address, set()))
            old_groups = (tuple(sorted(g for g in members.get(p.address, set()) if g in managed and g not in groups))
                          if "groups" in p.columns else ())
            if p.end and p.end <= now:
                steps.append(Step("leave", p.address, p, changes, new_groups, note=f"end {_show(p.end)} has passed"))
            elif changes or new_groups or old_groups:
                steps.append(Step("change", p.address, p, changes, new_groups, old_groups=old_groups))
            else:
                steps.append(Step("unchanged", p.address, p))
        listed = {p.address for p in people}
        for address, acc in sorted(accounts.items()):
            if address not in listed and acc.state in (AccountState.ACTIVE, AccountState.PENDING, AccountState.SUSPENDED):
                steps.append(Step("absent", address, note="not in the file: not changed"))
    return Plan(tuple(steps))


def _add_member(directory: Directory, group: str, address: str, *, by: str, reason: str) -> None:
    """`address` joins the group alias `group` (made when missing). Unlike `Directory.add_alias` a pending
    joiner may be a member: the alias reaches it from its start date."""
    with directory._change("alias.added", by=by, subject=group, reason=reason,
                           details={"target": address, "group": True}) as s:
        if s.scalar(select(Account.id).where(Account.address == group)) is not None:
            raise ValueError(f"group {group} is an account, not an alias")
        if s.scalar(select(Alias.id).where(Alias.alias == group, Alias.target == address)) is None:
            s.add(Alias(alias=group, target=address, created_at=directory.now()))


@dataclass
class Applied:
    joined: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def apply_import(directory: Directory, plan: Plan, policy: LifecyclePolicy, *, by: str, reason: str) -> Applied:
    """Apply the joins, changes and leaves of `plan` (each audited). Raises DirectoryError or ValueError on
    the first failure; what was applied before it stays (the next import shows what is left)."""
    from mailbastion.lifecycle.transitions import leave

    done = Applied()
    for step in plan.steps:
        p = step.person
        if p is None or step.kind not in ("join", "change", "leave"):
            continue
        if step.kind == "join":
            directory.add_account(p.address, None, by, reason, start_at=p.start, end_at=p.end, display_name=p.name,
                                  manager=p.manager)  # the generated password is never shown: enrolment sets one
            done.joined.append(p.address)
        else:
            fields = {"name": "display_name", "manager": "manager", "start": "start_at", "end": "end_at"}
            kwargs = {fields[k]: new for k, (_, new) in step.changes.items()}
            if kwargs:
                set_dates(directory, p.address, by=by, reason=reason, **kwargs)
            if step.kind == "leave":
                leave(directory, p.address, policy, by=by, reason=reason or "end date in the people file")
                done.left.append(p.address)
            else:
                done.changed.append(p.address)
        for group in step.new_groups:
            _add_member(directory, group, p.address, by=by, reason=reason)
        for group in step.old_groups:
            directory.remove_alias(group, p.address, by=by, reason=reason)
    return done


__all__ = ["COLUMNS", "Applied", "PeopleFileError", "Person", "Plan", "Step", "apply_import", "plan_import",
           "read_people"]
