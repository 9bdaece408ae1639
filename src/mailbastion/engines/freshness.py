"""Signature age, watched: each engine's info() is asked on a schedule and compared with its limit.

Over the limit (default 24 hours for ClamAV) the watch logs an alarm (`av.signatures_stale`), and
the anti-virus check reads `stale()` to hold or soft-reject mail by policy. An engine whose
info() fails is reported unreachable (`error`); scanning with it fails closed on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailbastion.engines.base import EngineInfo, Scanner

log = logging.getLogger("mailbastion.engines.freshness")

__all__ = ["EngineStatus", "FreshnessWatch"]


@dataclass(frozen=True, slots=True)
class EngineStatus:
    name: str
    vendor: str
    info: EngineInfo | None
    error: str = ""
    max_age: timedelta | None = None
    checked_at: datetime | None = None

    @property
    def age(self) -> timedelta | None:
        if self.info is None or self.info.signature_date is None or self.checked_at is None:
            return None
        return self.checked_at - self.info.signature_date

    @property
    def is_stale(self) -> bool:
        if self.max_age is None:
            return False
        if self.info is None:
            return False  # unreachable is reported as such; the scan itself fails closed
        age = self.age
        return age is None or age > self.max_age

    def describe(self) -> str:
        if self.error:
            return f"{self.name}: {self.error}"
        age = self.age
        limit = f" > {self.max_age}" if self.max_age is not None else ""
        return f"{self.name}: signatures {'of unknown age' if age is None else f'{age} old'}{limit}"


class FreshnessWatch:
    def __init__(self, scanners: Sequence[Scanner], max_age: dict[str, timedelta | None],
                 *, interval: float = 300.0) -> None:
        self.scanners = list(scanners)
        self.max_age = dict(max_age)
        self.interval = interval
        self.status: dict[str, EngineStatus] = {}
        self._task: asyncio.Task[None] | None = None
        self._checked = 0.0  # monotonic time of the last check
        self._lock = asyncio.Lock()

    async def recheck_if_stale(self, min_interval: float = 30.0) -> None:
        """While something is stale, look again at most every `min_interval` seconds, so mail flows again
        soon after freshclam catches up instead of waiting for the next scheduled check."""
        if not self.stale() or self._lock.locked():
            return
        if asyncio.get_running_loop().time() - self._checked < min_interval:
            return
        async with self._lock:
            await self.check_now()

    async def check_now(self) -> dict[str, EngineStatus]:
        self._checked = asyncio.get_running_loop().time()
        now = datetime.now(UTC)

        async def one(s: Scanner) -> EngineStatus:
            try:
                info = await asyncio.wait_for(s.info(), 15.0)
                return EngineStatus(s.name, s.vendor, info, "", self.max_age.get(s.name), now)
            except Exception as exc:  # noqa: BLE001 - one engine's failure is its status, not the watch's
                return EngineStatus(s.name, s.vendor, None, str(exc) or type(exc).__name__,
                                    self.max_age.get(s.name), now)

        results = await asyncio.gather(*(one(s) for s in self.scanners))
        self.status = {r.name: r for r in results}
        for r in results:
            if r.is_stale:
                log.error("av.signatures_stale engine=%s %s", r.name, r.describe())
        return self.status

    def stale(self) -> list[EngineStatus]:
        return [s for s in self.status.values() if s.is_stale]

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
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
