"""The ten measures as values, and the board that runs their probes: one representation for the portal's
dashboard and for `mailbastion audit`.

    board = MeasureBoard(probes)                      # measures/inventory.py builds the two lists
    results = await board.refresh()                   # every probe at once, each under a timeout
    board.results                                     # the last ones, for a page to show at once
    await board.close()                               # the portal stops: a running refresh ends, none starts again

A probe returns `MeasureResult`s whose state is one of STATES. Several probes may speak for one measure
(the `av status` report and the live EICAR probe both for measure 1): the board merges them, the worst
state wins, and a measure some of whose parts are NOT_BUILT is at best PARTIAL. A measure nothing checks is
NOT_BUILT, never MET. Probes never raise through the board: a failure becomes UNKNOWN with the error.

`status_word(state)` is the audit's three-word form (`"pass" | "fail" | "not built"`): MET and WARN pass
(WARN carries its warning as evidence), PARTIAL and NOT_BUILT are "not built" (the built part holds, the
rest does not exist), NOT_MET and UNKNOWN fail (what could not be checked is not passed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from mailbastion.core.tasks import cancel_and_wait

log = logging.getLogger("mailbastion.measures")

__all__ = ["FIXES", "MET", "NOT_BUILT", "NOT_MET", "PARTIAL", "STATES", "TITLES", "UNKNOWN", "WARN",
           "MeasureBoard", "MeasureProbe", "MeasureResult", "NotBuilt", "merge", "status_word"]

MET, WARN, NOT_MET, PARTIAL, NOT_BUILT, UNKNOWN = "met", "attention", "not met", "partial", "not built", "unknown"
STATES = (MET, WARN, NOT_MET, PARTIAL, NOT_BUILT, UNKNOWN)
PROBE_TIMEOUT = 60.0

TITLES = {
    1: "Anti-virus on all mail, fresh signatures",
    2: "Mail engine differs from the workstations'",
    3: "Spam filter at server level",
    4: "No open relay",
    5: "MTA in the DMZ, MDA inside",
    6: "Joiners and leavers",
    7: "Acceptable use policy",
    8: "Training on email risks",
    9: "Encryption",
    10: "SPF, DKIM, DMARC",
}

# What to do when a measure fails and its probe named nothing more precise.
FIXES = {
    1: "start clamd and run freshclam (`mailbastion av status`); see docs/antivirus.md",
    2: "scan with an engine with vendor signatures unlike the workstations' (ClamAV, ICAP): antivirus.*",
    3: "keep [spam] enabled and train the model (`mailbastion spam train`, `spam status`)",
    4: "list only your own hosts in relay.networks; never the addresses clients reach the listener from",
    5: "run the gateway role on a DMZ host and the internal role inside (docs: two-host deployment)",
    6: "keep `mailbastion serve` running (its scheduler applies start and end dates); `account leave ADDRESS --on now`",
    7: "publish a policy (`mailbastion aup publish FILE --version V`); `aup report` names who has not accepted it",
    8: "keep [training] on with mandatory modules; `mailbastion training report` names who is overdue",
    9: "renew certificates (`mailbastion tls renew`), keep tls.min_version, configure the outbound TLS policy",
    10: "publish what `mailbastion dns records` prints, then `mailbastion dns check`",
}

_RANK = {MET: 0, WARN: 1, PARTIAL: 2, NOT_BUILT: 2, UNKNOWN: 3, NOT_MET: 4}


def status_word(state: str) -> str:
    """The audit's word for a state: "pass", "fail" or "not built" (see the module docstring)."""
    if state in (MET, WARN):
        return "pass"
    if state in (PARTIAL, NOT_BUILT):
        return "not built"
    return "fail"


@dataclass(frozen=True, slots=True)
class MeasureResult:
    number: int
    state: str
    summary: str
    details: tuple[str, ...] = ()
    source: str = ""  # the command that shows the same facts
    checked_at: str = ""
    fix: str = ""  # what to do; "" = FIXES[number] when the measure does not pass

    @property
    def title(self) -> str:
        return TITLES[self.number]

    @property
    def status(self) -> str:
        return status_word(self.state)

    @property
    def advice(self) -> str:
        """What to do, or "" when the measure passes."""
        return "" if self.status == "pass" else (self.fix or FIXES[self.number])


def merge(parts: Sequence[MeasureResult]) -> MeasureResult:
    """One result from several probes' parts of one measure: the worst state; a NOT_BUILT part next to
    built ones makes at best PARTIAL; summaries and details in order; the first failing part's fix."""
    if len(parts) == 1:
        return parts[0]
    worst = max(parts, key=lambda r: _RANK[r.state]).state
    if worst in (NOT_BUILT, PARTIAL, MET, WARN) and any(r.state in (NOT_BUILT, PARTIAL) for r in parts):
        worst = NOT_BUILT if all(r.state == NOT_BUILT for r in parts) else PARTIAL
    failing = [r for r in parts if _RANK[r.state] >= _RANK[worst]]
    return MeasureResult(parts[0].number, worst, "; ".join(r.summary for r in parts if r.summary),
                         tuple(d for r in parts for d in r.details),
                         ", ".join(dict.fromkeys(r.source for r in parts if r.source)),
                         fix="; ".join(dict.fromkeys(r.fix for r in failing if r.fix)))


class MeasureProbe(Protocol):
    @property
    def numbers(self) -> tuple[int, ...]: ...

    async def __call__(self) -> Sequence[MeasureResult]: ...


@dataclass(frozen=True, slots=True)
class NotBuilt:
    numbers: tuple[int, ...]
    why: str

    async def __call__(self) -> Sequence[MeasureResult]:
        return [MeasureResult(n, NOT_BUILT, self.why, source="") for n in self.numbers]


class MeasureBoard:
    def __init__(self, probes: Sequence[MeasureProbe], *, ttl: float = 300.0, timeout: float = PROBE_TIMEOUT,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.probes = list(probes)
        self.ttl = ttl
        self.timeout = timeout
        self._monotonic = monotonic
        self.results: dict[int, MeasureResult] = {n: MeasureResult(n, UNKNOWN, "not checked yet") for n in TITLES}
        self.refreshed_at: float | None = None
        self._running: asyncio.Task[dict[int, MeasureResult]] | None = None
        self.closed = False  # close(): no refresh starts any more

    def with_probe(self, probe: MeasureProbe) -> MeasureBoard:
        """Replace whatever probed `probe.numbers` (issue 13 brings 7 and 8)."""
        kept = [p for p in self.probes if not set(p.numbers) & set(probe.numbers)]
        return MeasureBoard([*kept, probe], ttl=self.ttl, timeout=self.timeout, monotonic=self._monotonic)

    @property
    def is_stale(self) -> bool:
        return self.refreshed_at is None or self._monotonic() - self.refreshed_at > self.ttl

    def refresh_soon(self) -> None:
        """Start a refresh in the background unless one runs or the board is closed (a page shows the last results
        meanwhile)."""
        if not self.closed and (self._running is None or self._running.done()):
            self._running = asyncio.ensure_future(self._refresh())

    async def close(self) -> None:
        """Stop a refresh that is running (its probes end their child processes) and wait until it has; from then
        on the board starts none: `refresh()` returns the last results (the portal stops; a dashboard request
        still served shows them). A cancellation of the caller meanwhile is raised once the refresh has ended."""
        self.closed = True
        running, self._running = self._running, None
        try:
            await cancel_and_wait(running)
        except Exception:  # a fault of the refresh itself (probes' failures never get here): the stop goes on
            log.exception("measures: the refresh being stopped failed")

    async def refresh(self) -> dict[int, MeasureResult]:
        """Run every probe now (or wait for the refresh running) and return the results; the last results when
        the board is closed, also to a caller that was waiting when it closed."""
        self.refresh_soon()
        running = self._running
        if running is None:  # closed
            return self.results
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.closed and running.cancelled() and task is not None and not task.cancelling():
                return self.results  # ended by close(), not by a cancellation of our caller
            raise

    async def _probe(self, probe: MeasureProbe) -> Sequence[MeasureResult]:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for that is cancelled while it waits for a probe it has
        # timed out returns at once, and the probe, still ending its child process, would outlive close()
        async with asyncio.timeout(self.timeout):
            return await probe()

    async def _refresh(self) -> dict[int, MeasureResult]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        outcomes = await asyncio.gather(*(self._probe(p) for p in self.probes), return_exceptions=True)
        parts: dict[int, list[MeasureResult]] = {}
        for probe, outcome in zip(self.probes, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("measure probe %s failed: %s", type(probe).__name__, outcome)
                why = f"{type(outcome).__name__}: {outcome}".splitlines()[0][:300]
                for n in probe.numbers:
                    parts.setdefault(n, []).append(MeasureResult(n, UNKNOWN, f"the check failed: {why}"))
            else:
                for r in outcome:
                    parts.setdefault(r.number, []).append(r)
        merged = {n: merge(rs) for n, rs in parts.items()}
        fresh = {n: replace(m, checked_at="" if m.state == NOT_BUILT else stamp) for n, m in merged.items()}
        self.results = {n: fresh.get(n, MeasureResult(n, NOT_BUILT, "nothing checks this")) for n in TITLES}
        self.refreshed_at = self._monotonic()
        return self.results
