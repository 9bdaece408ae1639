"""Engine availability and signature age, watched: each engine's info() on a schedule, compared with its limit.

Over the limit (default 24 hours for ClamAV), or of unknown age (a clamd with local databases only),
the watch logs an alarm (`av.signatures_stale`), and the anti-virus check reads `stale()` to hold or
soft-reject mail by policy. An engine whose info() fails is reported unreachable (`error`); scanning
with it fails closed on its own.

Engines named in `auto` (ClamAV with `enabled = "auto"`) are used only while they answer: the watch
says when one comes on (`av.engine_on`) or goes away (`av.engine_off`), and the check skips it while it
is off. Measure 2 (`measure2()`, engines/measure2.py) is logged when it changes (`av.measure2 met` /
`av.measure2_not_met`). Checks run at `start()`, every `interval` seconds (every `degraded_interval`
while something is stale, off or measure 2 is not met), when the pipeline is rebuilt (reload), and
at most every 30 s on mail while degraded (`recheck_if_stale`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from mailbastion import metrics
from mailbastion.engines.base import EngineStatus, Scanner
from mailbastion.engines.measure2 import Measure2, assess

log = logging.getLogger("mailbastion.engines.freshness")

__all__ = ["LOCAL_DATABASE", "FreshnessWatch", "policy_consequence"]

LOCAL_DATABASE = "local database only"  # EngineInfo.extra["database"] of a clamd whose VERSION has no date


def policy_consequence(stale_policy: str) -> str:
    """What mail gets under `antivirus.stale_policy` while signatures are stale or measure 2 is not met, in words
    an administrator reads in the log (a new deployment without signatures meets it first)."""
    said = f'(antivirus.stale_policy = "{stale_policy}")'
    if stale_policy == "soft_reject":
        return f"every message is deferred with 451 4.7.0 {said}"
    if stale_policy == "hold":
        return f"every message is accepted and held in the quarantine {said}"
    return f"mail is accepted, scanned by the other engines {said}"


class FreshnessWatch:
    def __init__(self, scanners: Sequence[Scanner], max_age: dict[str, timedelta | None], *,
                 interval: float = 300.0, auto: frozenset[str] = frozenset(), workstation: str | None = None,
                 measure2_enforced: bool = False, degraded_interval: float = 30.0,
                 stale_policy: str = "soft_reject") -> None:
        self.scanners = list(scanners)
        self.max_age = dict(max_age)
        self.interval = interval
        self.degraded_interval = min(degraded_interval, interval)
        self.auto = frozenset(auto)
        self.workstation = workstation
        self.measure2_enforced = measure2_enforced  # the check defers mail (stale_policy) while it is not met
        self.stale_policy = stale_policy  # what the check does meanwhile: only said in the log lines here
        self.status: dict[str, EngineStatus] = {}
        self._task: asyncio.Task[None] | None = None
        self._checked = 0.0  # monotonic time of the last check
        self._lock = asyncio.Lock()
        self._measure2: Measure2 | None = None
        self._wake = asyncio.Event()

    # ---- what the check reads

    def stale(self) -> list[EngineStatus]:
        return [s for s in self.status.values() if s.is_stale]

    def is_active(self, name: str) -> bool:
        """Whether the check scans with this engine now: always, unless it is auto and off."""
        if name not in self.auto:
            return True
        status = self.status.get(name)
        return status is not None and status.is_available

    def measure2(self) -> Measure2:
        return assess(self.workstation, self.scanners, self.status)

    @property
    def is_degraded(self) -> bool:
        return bool(self.stale()) or any(not self.is_active(n) for n in self.auto) or (
            self.measure2_enforced and not self.measure2().met)

    # ---- checking

    async def recheck_if_stale(self, min_interval: float = 30.0) -> None:
        """While something is stale, off, or measure 2 not met, look again at most every `min_interval`
        seconds, so mail flows again soon after freshclam catches up or clamd starts, instead of waiting
        for the next scheduled check."""
        if not self.is_degraded or self._lock.locked():
            return
        if asyncio.get_running_loop().time() - self._checked < min_interval:
            return
        async with self._lock:
            await self.check_now()

    async def ensure_checked(self) -> None:
        """Check once if nothing was checked yet (a pipeline used without start(), e.g. `mailbastion scan`)."""
        if not self.status:
            async with self._lock:
                if not self.status:
                    await self.check_now()

    def recheck_soon(self) -> None:
        """Wake the background loop now (an engine failed a scan, or the configuration was reloaded)."""
        self._wake.set()

    async def check_now(self) -> dict[str, EngineStatus]:
        self._checked = asyncio.get_running_loop().time()
        now = datetime.now(UTC)

        async def one(s: Scanner) -> EngineStatus:
            auto = s.name in self.auto
            try:
                info = await asyncio.wait_for(s.info(), 15.0)
                return EngineStatus(s.name, s.vendor, info, "", self.max_age.get(s.name), now, auto)
            except Exception as exc:  # noqa: BLE001 - one engine's failure is its status, not the watch's
                return EngineStatus(s.name, s.vendor, None, str(exc) or type(exc).__name__,
                                    self.max_age.get(s.name), now, auto)

        results = await asyncio.gather(*(one(s) for s in self.scanners))
        previous, self.status = self.status, {r.name: r for r in results}
        for r in results:
            age = r.age
            metrics.signature_age(r.name, age.total_seconds() if age is not None else None)
            self._log_transition(previous.get(r.name), r)
            if r.is_stale:
                log.error("av.signatures_stale engine=%s %s; %s", r.name, r.describe(),
                          policy_consequence(self.stale_policy))
        self._log_measure2()
        return self.status

    def _log_transition(self, before: EngineStatus | None, now: EngineStatus) -> None:
        if not now.auto or (before is not None and before.is_available == now.is_available):
            return
        if now.is_available and now.info is not None:
            i = now.info
            log.warning("av.engine_on engine=%s version=%s signatures=%s signature_age=%s: it scans every message "
                        "from now on", now.name, i.version, i.signature_version or "-", now.age_text)
        elif before is None:
            log.error("av.engine_off engine=%s reason=%r: not used until it answers with signatures (checked every "
                      "%gs); run freshclam and start clamd", now.name, now.error, self.degraded_interval)
        else:
            log.error("av.engine_off engine=%s reason=%r: it went away; not used until it answers again", now.name,
                      now.error)

    def _log_measure2(self) -> None:
        if self.workstation is None:
            return
        m = self.measure2()
        if self._measure2 is not None and self._measure2.met == m.met:
            self._measure2 = m
            return
        self._measure2 = m
        if m.met:
            log.warning("av.measure2 %s", m.describe())
        else:
            consequence = (policy_consequence(self.stale_policy) + " until it is met" if self.measure2_enforced
                           else "mail is scanned by the other engines only")
            log.error("av.measure2_not_met %s; %s", m.describe(), consequence)

    async def _loop(self) -> None:
        while True:
            wait = self.degraded_interval if self.is_degraded else self.interval
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                async with self._lock:
                    await self.check_now()
            except Exception:
                log.exception("freshness check failed")

    async def start(self) -> None:
        if self._task is None:
            await self.check_now()
            self._task = asyncio.create_task(self._loop(), name="av-freshness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def is_running(self) -> bool:
        return self._task is not None
