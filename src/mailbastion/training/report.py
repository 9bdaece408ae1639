"""The training report: per user and per group (assigned, completed, overdue, score) with each person's
phishing-simulation outcomes, and per campaign. `mailbastion training report [--csv]` and the portal's
admin page read it; measures/training.py reads `compliance`.

    report = build_report(directory, settings)     # TrainingReport (now: the directory's clock)
    report.users, report.groups, report.campaigns
    report.to_csv()                                 # one row per active account
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbastion.training.models import TrainingTarget
from mailbastion.training.store import AssignmentView, TrainingStore

if TYPE_CHECKING:
    import datetime as dt

    from mailbastion.config import Settings
    from mailbastion.directory.store import Directory
    from mailbastion.training.campaigns import CampaignInfo

__all__ = ["CSV_COLUMNS", "CampaignRow", "GroupRow", "TrainingReport", "UserRow", "build_report", "compliance"]

CSV_COLUMNS = ("address", "groups", "assigned", "completed", "overdue", "score", "simulations", "clicked",
               "reported", "modules_overdue")


@dataclass(frozen=True, slots=True)
class UserRow:
    address: str
    groups: tuple[str, ...]
    assigned: int
    completed: int
    overdue: tuple[str, ...]  # module ids
    score: int | None  # mean of the last scores of attempted modules
    simulations: int = 0
    clicked: int = 0
    reported: int = 0


@dataclass
class GroupRow:
    group: str
    members: int = 0
    assigned: int = 0
    completed: int = 0
    overdue: int = 0
    scores: list[int] = field(default_factory=list)

    @property
    def score(self) -> int | None:
        return round(sum(self.scores) / len(self.scores)) if self.scores else None


@dataclass(frozen=True, slots=True)
class CampaignRow:
    info: CampaignInfo
    delivered: int
    clicked: int
    reported: int
    ignored: int


@dataclass(frozen=True, slots=True)
class TrainingReport:
    now: dt.datetime
    users: tuple[UserRow, ...]
    groups: tuple[GroupRow, ...]
    campaigns: tuple[CampaignRow, ...]

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for u in self.users:
            w.writerow([_cell(u.address), _cell(";".join(u.groups)), u.assigned, u.completed, len(u.overdue),
                        "" if u.score is None else u.score, u.simulations, u.clicked, u.reported, ";".join(u.overdue)])
        return out.getvalue()


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _mean(values: Sequence[int]) -> int | None:
    return round(sum(values) / len(values)) if values else None


def compliance(assignments: Sequence[AssignmentView], active: Sequence[str], mandatory: Sequence[str],
               now: dt.datetime) -> tuple[list[str], list[str]]:
    """(overdue, unassigned): "address: module" for every active account's mandatory module that is past its
    due date and not completed, and for every one that is not assigned at all."""
    held = {(a.address, a.module): a for a in assignments}
    overdue, missing = [], []
    for address in active:
        for module in mandatory:
            a = held.get((address, module))
            if a is None:
                missing.append(f"{address}: {module}")
            elif a.overdue(now):
                overdue.append(f"{address}: {module} (due {a.due_at:%Y-%m-%d})")
    return overdue, missing


def build_report(directory: Directory, settings: Settings) -> TrainingReport:
    from mailbastion.training.campaigns import CampaignStore

    store = TrainingStore(directory)
    now = store.now()
    active = store.active_accounts()
    groups_of = store.groups_of()
    by_user: dict[str, list[AssignmentView]] = {}
    for a in store.assignments():
        by_user.setdefault(a.address, []).append(a)
    sims: dict[str, list[int]] = {}
    with Session(directory.engine) as s:
        for t in s.scalars(select(TrainingTarget).where(TrainingTarget.delivered_at.is_not(None))):
            c = sims.setdefault(t.address, [0, 0, 0])
            c[0] += 1
            c[1] += t.clicked_at is not None
            c[2] += t.reported_at is not None
    users: list[UserRow] = []
    groups: dict[str, GroupRow] = {}
    for address in active:
        items = by_user.get(address, [])
        scores = [a.score for a in items if a.score is not None]
        sim = sims.get(address, [0, 0, 0])
        row = UserRow(address, tuple(groups_of.get(address, ())), len(items),
                      sum(a.completed_at is not None for a in items),
                      tuple(a.module for a in items if a.overdue(now)), _mean(scores), *sim)
        users.append(row)
        for g in row.groups or ("(no group)",):
            gr = groups.setdefault(g, GroupRow(g))
            gr.members += 1
            gr.assigned += row.assigned
            gr.completed += row.completed
            gr.overdue += len(row.overdue)
            gr.scores += scores
    campaigns = CampaignStore(directory, settings)
    rows = []
    for info in campaigns.campaigns():
        results = campaigns.results(info.name)
        rows.append(CampaignRow(info, sum(r.delivered for r in results), sum(r.clicked for r in results),
                                sum(r.reported for r in results), sum(r.outcome == "ignored" for r in results)))
    return TrainingReport(now, tuple(users), tuple(sorted(groups.values(), key=lambda g: g.group)), tuple(rows))
