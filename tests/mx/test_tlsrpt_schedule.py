"""The gateway's daily TLS-RPT job: at a fixed UTC time, and at start when a finished day was not sent."""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt

from mailbastion.apps.role_gateway import TlsRptSchedule, seconds_until


def epoch(text: str) -> float:
    return float(calendar.timegm(dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timetuple()))


def test_the_next_run_is_the_next_time_of_day_in_utc() -> None:
    assert seconds_until((0, 30), epoch("2026-05-01 00:00:00")) == 1800
    assert seconds_until((0, 30), epoch("2026-05-01 00:30:00")) == 86400  # strictly later: not twice
    assert seconds_until((0, 30), epoch("2026-05-01 23:00:00")) == 5400
    assert seconds_until((23, 59), epoch("2026-12-31 23:58:30")) == 30


class Runs:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> list[object]:
        self.count += 1
        return []


async def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_a_missed_day_is_sent_at_start() -> None:
    runs = Runs()
    schedule = TlsRptSchedule(runs, at=(0, 30), pending=lambda: ["2026-04-30"], clock=lambda: epoch("2026-05-01 08:00:00"))
    schedule.start()
    try:
        await wait_for(lambda: runs.count == 1)
    finally:
        await schedule.stop()


async def test_nothing_pending_waits_for_the_time_of_day_then_runs() -> None:
    runs = Runs()
    now = epoch("2026-05-01 00:29:59") + 0.8  # 0.2 s before 00:30 UTC
    schedule = TlsRptSchedule(runs, at=(0, 30), pending=list, clock=lambda: now)
    schedule.start()
    try:
        await asyncio.sleep(0.05)
        assert runs.count == 0  # nothing missed: no run at start
        await wait_for(lambda: runs.count >= 1)
    finally:
        await schedule.stop()


async def test_a_failing_run_does_not_stop_the_schedule() -> None:
    calls = []

    async def broken() -> list[object]:
        calls.append(1)
        raise RuntimeError("store locked")

    now = epoch("2026-05-01 00:29:59") + 0.9
    schedule = TlsRptSchedule(broken, at=(0, 30), pending=lambda: ["2026-04-30"], clock=lambda: now)
    schedule.start()
    try:
        await wait_for(lambda: len(calls) >= 2)  # at start, then again at the time of day
    finally:
        await schedule.stop()
