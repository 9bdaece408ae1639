"""QueueManager over a real spool with a scripted agent: per-recipient status, retries, DSNs, crash resume."""

from __future__ import annotations

import asyncio
import email
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.delivery.agent import Delivered, DeliveryOutcome, PermFailed, TempFailed
from mailbastion.spool.control import QueueControl
from mailbastion.spool.layout import QueueState
from mailbastion.spool.manager import QueueManager
from mailbastion.spool.record import QueueRecord, RecipientState
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.writer import Spool

MESSAGE = b"From: alice@example.org\r\nSubject: report\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n"
FAST = RetrySchedule(min_backoff=0.2, max_backoff=0.3, max_lifetime=3600, bounce_lifetime=3600)


class ScriptedAgent:
    """Answers per address from a script: a list consumed one per attempt (the last one repeats)."""

    def __init__(self, script: dict[str, list[DeliveryOutcome]] | None = None, delay: float = 0.0) -> None:
        self.script = script or {}
        self.delay = delay
        self.calls: list[tuple[float, QueueRecord, bytes]] = []
        self.active = 0
        self.max_active = 0

    async def deliver(self, record: QueueRecord, message: bytes) -> dict[str, DeliveryOutcome]:
        self.calls.append((time.monotonic(), record, message))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        out: dict[str, DeliveryOutcome] = {}
        for r in record.pending:
            steps = self.script.get(r.address, [Delivered("250 2.0.0 ok")])
            out[r.address] = steps.pop(0) if len(steps) > 1 else steps[0]
        return out

    def calls_to(self, address: str) -> list[tuple[float, QueueRecord, bytes]]:
        return [c for c in self.calls if any(r.address == address for r in c[1].recipients)]


def env(*rcpts: str, sender: str | None = "alice@example.org") -> Envelope:
    return Envelope(sender=parse_address(sender) if sender else None,
                    recipients=tuple(parse_address(r) for r in rcpts))


async def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool", min_free_bytes=0)


def make_manager(spool: Spool, agent: ScriptedAgent, **kw: object) -> QueueManager:
    kw.setdefault("schedule", FAST)
    kw.setdefault("scan_interval", 0.05)
    return QueueManager(spool, agent, hostname="mx.example.org", **kw)  # type: ignore[arg-type]


def states(spool: Spool) -> dict[str, list[str]]:
    return {s.value: spool.layout.ids(s) for s in QueueState if spool.layout.ids(s)}


def queued_ids(spool: Spool) -> set[str]:
    return {q for s in QueueState for q in spool.layout.ids(s)}


async def test_all_delivered_removes_the_entry_without_dsn(spool: Spool) -> None:
    agent = ScriptedAgent()
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        qid = await spool.commit(env("b@example.net", "c@example.net"), MESSAGE, client="c")
        await eventually(lambda: states(spool) == {} and len(agent.calls) == 1)
    finally:
        await qm.stop()
    assert agent.calls[0][1].queue_id == qid and agent.calls[0][2] == MESSAGE


async def test_per_recipient_outcomes_retry_schedule_and_one_dsn(spool: Spool) -> None:
    agent = ScriptedAgent({
        "temp@example.net": [TempFailed("451 4.3.0 try later"), TempFailed("452 4.2.2 full"),
                             Delivered("250 2.0.0 ok at last")],
        "gone@example.net": [PermFailed("550 5.1.1 <gone@example.net>: user unknown")],
    })
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        qid = await spool.commit(env("ok@example.net", "temp@example.net", "gone@example.net"), MESSAGE, client="c")
        await eventually(lambda: qid in spool.layout.ids(QueueState.DEFERRED))
        record = spool.layout.load(QueueState.DEFERRED, qid)
        by = {r.address: r for r in record.recipients}
        assert by["ok@example.net"].status is RecipientState.DELIVERED
        assert by["ok@example.net"].response == "250 2.0.0 ok"
        assert by["temp@example.net"].status is RecipientState.DEFERRED
        assert by["temp@example.net"].attempts == 1 and by["temp@example.net"].last_error == "451 4.3.0 try later"
        assert by["temp@example.net"].next_retry == pytest.approx(by["temp@example.net"].updated + 0.2)
        assert by["gone@example.net"].status is RecipientState.FAILED and by["gone@example.net"].notified
        await eventually(lambda: states(spool) == {} and len(agent.calls_to("temp@example.net")) == 3)
    finally:
        await qm.stop()
    tries = agent.calls_to("temp@example.net")
    # Retries only re-send to the recipient that is not final.
    assert [sorted(r.address for r in c[1].recipients) for c in tries[1:]] == [["temp@example.net"]] * 2
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.2 - 0.02 and gaps[1] >= 0.3 - 0.02  # 0.2, then doubled to the 0.3 cap
    dsns = [c for c in agent.calls if c[1].is_null_sender]
    assert len(dsns) == 1  # exactly one bounce, to the sender, about gone@ only
    dsn_record, dsn_bytes = dsns[0][1], dsns[0][2]
    assert [r.address for r in dsn_record.recipients] == ["alice@example.org"]
    report = email.message_from_bytes(dsn_bytes)
    assert report.get_content_type() == "multipart/report"
    assert b"Final-Recipient: rfc822; gone@example.net" in dsn_bytes
    assert b"temp@example.net" not in dsn_bytes and b"ok@example.net" not in dsn_bytes


async def test_null_sender_failures_make_no_dsn(spool: Spool) -> None:
    agent = ScriptedAgent({"x@example.net": [PermFailed("550 5.1.1 unknown")]})
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        await spool.commit(env("x@example.net", sender=None), MESSAGE, client="dsn")
        await eventually(lambda: states(spool) == {} and len(agent.calls) == 1)
        await asyncio.sleep(0.2)
    finally:
        await qm.stop()
    assert len(agent.calls) == 1  # no bounce was queued for a bounce


async def test_expired_message_fails_with_4_4_7_and_bounces(spool: Spool, tmp_path: Path) -> None:
    now = [1_000_000.0]
    clocked = Spool(tmp_path / "spool", min_free_bytes=0, clock=lambda: now[0])
    agent = ScriptedAgent({"slow@example.net": [TempFailed("421 4.4.2 timeout")]})
    qm = make_manager(clocked, agent, clock=lambda: now[0],
                      schedule=RetrySchedule(min_backoff=10, max_backoff=10, max_lifetime=100, bounce_lifetime=50))
    await qm.start()
    try:
        qid = await clocked.commit(env("slow@example.net"), MESSAGE, client="c")
        await eventually(lambda: qid in clocked.layout.ids(QueueState.DEFERRED))
        now[0] += 150  # past the lifetime: the next attempt is the last
        await eventually(lambda: len(agent.calls) >= 3)  # last try, then the DSN delivered
    finally:
        await qm.stop()
    dsn = next(c for c in agent.calls if c[1].is_null_sender)[2]
    assert b"Status: 4.4.7" in dsn and b"Action: failed" in dsn and b"421 4.4.2 timeout" in dsn
    assert qid not in queued_ids(clocked)


async def test_active_entries_left_by_a_crash_are_resumed(spool: Spool) -> None:
    qid = await spool.commit(env("b@example.net"), MESSAGE, client="c")
    spool.layout.move(qid, QueueState.INCOMING, QueueState.ACTIVE)  # the crashed run had claimed it
    agent = ScriptedAgent()
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        await eventually(lambda: states(spool) == {} and len(agent.calls) == 1)
    finally:
        await qm.stop()


async def test_concurrency_is_bounded_and_stop_finishes_in_flight(spool: Spool) -> None:
    agent = ScriptedAgent(delay=0.3)
    qm = make_manager(spool, agent, concurrency=2)
    for i in range(5):
        await spool.commit(env(f"u{i}@example.net"), MESSAGE, client="c")
    await qm.start()
    await eventually(lambda: agent.active == 2)
    await qm.stop()  # the two in flight complete; the rest stay queued
    assert agent.max_active == 2 and len(agent.calls) == 2
    assert len(spool.layout.ids(QueueState.INCOMING)) == 3 and spool.layout.ids(QueueState.ACTIVE) == []
    qm2 = make_manager(spool, agent, concurrency=2)
    await qm2.start()
    try:
        await eventually(lambda: states(spool) == {})
    finally:
        await qm2.stop()
    assert agent.max_active == 2 and len(agent.calls) == 5


async def test_stop_timeout_leaves_the_entry_in_active_for_the_next_start(spool: Spool) -> None:
    agent = ScriptedAgent(delay=30)
    qm = make_manager(spool, agent)
    qid = await spool.commit(env("b@example.net"), MESSAGE, client="c")
    await qm.start()
    await eventually(lambda: agent.active == 1)
    await qm.stop(timeout=0.1)
    assert spool.layout.ids(QueueState.ACTIVE) == [qid]


async def test_agent_exceptions_and_missing_outcomes_defer(spool: Spool) -> None:
    class Broken:
        async def deliver(self, record: QueueRecord, message: bytes) -> dict[str, DeliveryOutcome]:
            if record.recipients[0].address.startswith("raise"):
                raise RuntimeError("bug")
            return {}

    qm = make_manager(spool, Broken())  # type: ignore[arg-type]
    await qm.start()
    try:
        a = await spool.commit(env("raise@example.net"), MESSAGE, client="c")
        b = await spool.commit(env("silent@example.net"), MESSAGE, client="c")
        await eventually(lambda: {a, b} <= set(spool.layout.ids(QueueState.DEFERRED)))
    finally:
        await qm.stop()
    for qid in (a, b):
        r = spool.layout.load(QueueState.DEFERRED, qid).recipients[0]
        assert r.status is RecipientState.DEFERRED and r.last_error.startswith("4.3.0")


async def test_corrupt_records_are_set_aside(spool: Spool) -> None:
    qid = await spool.commit(env("b@example.net"), MESSAGE, client="c")
    (spool.layout.entry(QueueState.INCOMING, qid) / "record.json").write_bytes(b"{garbage")
    agent = ScriptedAgent()
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        await eventually(lambda: spool.layout.ids(QueueState.CORRUPT) == [qid])
    finally:
        await qm.stop()
    assert agent.calls == []


async def test_hold_release_and_retry_through_queue_control(spool: Spool) -> None:
    agent = ScriptedAgent({"t@example.net": [TempFailed("451 4.3.0 later"), Delivered("250 ok")]})
    qm = make_manager(spool, agent, schedule=RetrySchedule(min_backoff=3600, max_backoff=3600))
    control = QueueControl(spool.root)
    qid = await spool.commit(env("h@example.net"), MESSAGE, client="c")
    control.hold(qid)
    t = await spool.commit(env("t@example.net"), MESSAGE, client="c")
    await qm.start()
    try:
        await eventually(lambda: t in spool.layout.ids(QueueState.DEFERRED))
        assert spool.layout.ids(QueueState.HOLD) == [qid] and not agent.calls_to("h@example.net")
        control.release(qid)
        await eventually(lambda: qid not in queued_ids(spool))
        control.retry(t)  # due in an hour; retry makes it due now
        await eventually(lambda: states(spool) == {})
    finally:
        await qm.stop()
    assert len(agent.calls_to("t@example.net")) == 2


async def test_dsn_that_cannot_be_queued_is_retried_later(spool: Spool) -> None:
    agent = ScriptedAgent({"gone@example.net": [PermFailed("550 5.1.1 unknown")]})
    qm = make_manager(spool, agent)
    qid = await spool.commit(env("gone@example.net"), MESSAGE, client="c")
    spool.min_free_bytes = 2**62  # the disk fills up: the bounce cannot be committed
    await qm.start()
    try:
        await eventually(lambda: qid in spool.layout.ids(QueueState.DEFERRED))
        r = spool.layout.load(QueueState.DEFERRED, qid).recipients[0]
        assert r.status is RecipientState.FAILED and not r.notified  # kept until the DSN is queued
        spool.min_free_bytes = 0
        await eventually(lambda: states(spool) == {} and any(c[1].is_null_sender for c in agent.calls))
    finally:
        await qm.stop()
    assert len(agent.calls_to("gone@example.net")) == 1  # the failed recipient is not tried again


_CRASHING_MANAGER = """
import asyncio, sys
from mailbastion.spool.manager import QueueManager
from mailbastion.spool.writer import Spool

class Hang:
    async def deliver(self, record, message):
        print("claimed", record.queue_id, flush=True)
        await asyncio.sleep(3600)

async def main():
    qm = QueueManager(Spool(sys.argv[1], min_free_bytes=0), Hang(), scan_interval=0.05)
    await qm.start()
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_manager_leaves_work_in_active_and_the_next_one_delivers_it(spool: Spool) -> None:
    import os
    import signal
    import sys

    qid = await spool.commit(env("b@example.net"), MESSAGE, client="c")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _CRASHING_MANAGER, str(spool.root),
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.decode().split() == ["claimed", qid]
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    assert spool.layout.ids(QueueState.ACTIVE) == [qid]
    agent = ScriptedAgent()
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        await eventually(lambda: states(spool) == {} and len(agent.calls) == 1)
    finally:
        await qm.stop()
    assert agent.calls[0][2] == MESSAGE
