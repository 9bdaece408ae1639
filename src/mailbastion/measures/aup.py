"""Measure 7, the acceptable use policy, from the directory: a version in effect, every active account has
accepted it or is still inside its grace period, and enforcement is on (`[aup] enforce` "submission" or
"notify"; "off" fails). The evidence gives the counts and names the overdue accounts (the first 20).

    probe = AupProbe(settings, directory)          # portal dashboard and `mailbastion audit`
    [result] = await probe()
"""

from __future__ import annotations

from mailbastion.measures.board import MET, NOT_MET, MeasureResult
from mailbastion.measures.internal import InternalProbe, OnInternalHost

__all__ = ["AupProbe", "NoAupDirectory"]

SOURCE = "mailbastion aup report"
LISTED = 20


class AupProbe(InternalProbe):
    numbers = (7,)

    def _check(self) -> MeasureResult:
        from mailbastion.aup.standing import AupPolicy, State, counts, standings
        from mailbastion.aup.store import AupStore

        store, policy = AupStore(self.directory), AupPolicy.from_settings(self.settings)
        a = self.settings.aup
        now = store.now()
        current = store.current(now)
        if current is None:
            upcoming = store.upcoming(now)
            why = (f"version {upcoming[0].version} takes effect {upcoming[0].effective_at:%Y-%m-%d}" if upcoming
                   else "none published")
            return MeasureResult(7, NOT_MET, f"no acceptable use policy in effect ({why})", (), SOURCE,
                                 fix="`mailbastion aup template > aup.md`, adapt it, then `mailbastion aup publish "
                                     "aup.md --version 1`")
        rows = standings(store, policy, current, now)
        n = counts(rows)
        overdue = [r for r in rows if r.state is State.OVERDUE]
        evidence = [(f"version {current.version} in effect since {current.effective_at:%Y-%m-%d %H:%M} UTC "
                    f"(sha256 {current.sha256[:16]})"),
                    (f"{len(rows)} active account(s): {n[State.ACCEPTED]} accepted, {n[State.DUE]} inside the "
                    f"{a.grace_days}-day grace period, {n[State.OVERDUE]} overdue"),
                    f"enforcement: {a.enforce}" + ("" if self.settings.lifecycle.enabled else
                                                   " (notices need the lifecycle scheduler: [lifecycle] enabled)")]
        problems = [f"overdue since {r.due_at:%Y-%m-%d}: {r.address}" for r in overdue[:LISTED]]
        if len(overdue) > LISTED:
            problems.append(f"... and {len(overdue) - LISTED} more (`{SOURCE}`)")
        if a.enforce == "off":
            return MeasureResult(7, NOT_MET, "the acceptable use policy is not enforced ([aup] enforce = \"off\")",
                                 (*evidence, *problems), SOURCE,
                                 fix='set [aup] enforce = "submission" (or "notify") and restart')
        if overdue:
            return MeasureResult(7, NOT_MET, f"{len(overdue)} active account(s) have not accepted version "
                                 f"{current.version} within the grace period", (*problems, *evidence), SOURCE,
                                 fix="remind them to accept it in the portal (/aup); "
                                     + ("their sending is refused until they do" if a.enforce == "submission"
                                        else "each was sent a notice"))
        return MeasureResult(7, MET, f"version {current.version} accepted by {n[State.ACCEPTED]} of {len(rows)} "
                             f"active account(s), the others inside the grace period; enforced ({a.enforce})",
                             tuple(evidence), SOURCE)


class NoAupDirectory(OnInternalHost):
    """Measure 7 where no directory lives (a gateway): checked on the internal host."""

    numbers = (7,)
    missing = "directory"
