"""Measure 6, joiners and leavers, from what the directory and the lifecycle scheduler show: no account
active past its end date, none pending past its start date, no alias pointing at nobody, the scheduler
checking dates on time (lifecycle/status.py: its last check within three intervals) and, with
`[directory.ldap]`, the last directory sync within three of its intervals."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mailbastion.measures.board import MET, NOT_MET, MeasureResult
from mailbastion.measures.internal import OnInternalHost

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings
    from mailbastion.directory.portal import PortalStore

__all__ = ["DirectoryProbe", "NoDirectory"]

LATE_AFTER_INTERVALS = 3  # a check or sync this many intervals old (plus a minute) is late


class DirectoryProbe:
    numbers: tuple[int, ...] = (6,)

    def __init__(self, store: PortalStore, settings: Settings | None = None,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.now = now or (lambda: dt.datetime.now(dt.UTC))

    async def __call__(self) -> Sequence[MeasureResult]:
        return [await asyncio.to_thread(self._check)]

    def _check(self) -> MeasureResult:
        overdue = self.store.overdue_leavers()
        late_joiners = self.store.overdue_joiners()
        dead = self.store.directory.dead_aliases()
        pending = self.store.count_accounts(state="pending")
        problems = [*(f"past its end date but still active: {a}" for a in overdue[:20]),
                    *(f"past its start date but still pending: {a}" for a in late_joiners[:20]),
                    *(f"alias {d.alias} -> {d.target}: {d.why}" for d in dead[:20])]
        evidence = [f"{pending} account(s) pending until their start date"]
        late = self._scheduler(problems, evidence)
        if problems:
            summary = (f"{len(overdue)} leaver(s) still active, {len(late_joiners)} joiner(s) late, "
                       f"{len(dead)} dead alias(es)" + (f"; {late}" if late else ""))
            fix = ("start `mailbastion serve` (its lifecycle scheduler applies the dates), or `mailbastion account "
                   f"leave {overdue[0]} --on now`" if overdue else
                   "start `mailbastion serve` (its lifecycle scheduler applies the dates)" if late or late_joiners
                   else "remove or repoint the aliases named (`mailbastion account alias`)")
            return MeasureResult(6, NOT_MET, summary, (*problems, *evidence), "mailbastion account list", fix=fix)
        return MeasureResult(6, MET, "dates applied on time: no leaver active, no joiner late, every alias reaches "
                             "someone", tuple(evidence), "mailbastion account list")

    def _scheduler(self, problems: list[str], evidence: list[str]) -> str:
        """Add the scheduler's and the directory sync's evidence; returns why they are late ("" when not)."""
        if self.settings is None:
            return ""
        from mailbastion.lifecycle.status import read

        s, now, why = self.settings, self.now(), ""
        status = read(s)
        if not s.lifecycle.enabled:
            problems.append("the lifecycle scheduler is off ([lifecycle] enabled = false): dates are not applied")
            return "dates not applied"
        limit = dt.timedelta(seconds=LATE_AFTER_INTERVALS * s.lifecycle.check_interval_seconds + 60)
        if status.checked_at is None or now - status.checked_at > limit:
            seen = status.checked_at.isoformat(timespec="seconds") if status.checked_at else "never"
            problems.append(f"the lifecycle scheduler last checked the dates: {seen} (is `mailbastion serve` running?)")
            why = "the scheduler is not checking"
        else:
            evidence.append(f"dates last checked {status.checked_at.isoformat(timespec='seconds')}")
        ldap = s.directory.ldap
        if ldap.enabled:
            ldap_limit = dt.timedelta(seconds=LATE_AFTER_INTERVALS * ldap.interval_seconds + 60)
            if status.ldap_synced_at is None or now - status.ldap_synced_at > ldap_limit:
                seen = status.ldap_synced_at.isoformat(timespec="seconds") if status.ldap_synced_at else "never"
                problems.append(f"directory sync from {ldap.url} last worked: {seen}"
                                + (f" ({status.ldap_error})" if status.ldap_error else ""))
                why = why or "the directory sync is late"
            else:
                evidence.append(f"directory synced from LDAP {status.ldap_synced_at.isoformat(timespec='seconds')}")
        else:
            evidence.append("no directory sync configured ([directory.ldap]): accounts come from the CLI, the "
                            "portal and `people import`")
        return why


class NoDirectory(OnInternalHost):
    """Measure 6 where no directory lives (a gateway): checked on the internal host."""

    numbers = (6,)
    missing = "directory"
