"""QueueManager over a real spool with a scripted agent: per-recipient status, retries, DSNs, crash resume."""

from __future__ import annotations

import asyncio
import email
import functools
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope, RecipientDsn
from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome, Failed, Handoff
from mailbastion.core.ports import DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.delivery.dsn import build_dsn
from mailbastion.spool.control import QueueControl
from mailbastion.spool.layout import QueueState
from mailbastion.spool.manager import QueueManager
from mailbastion.spool.record import QueueRecord, RecipientState
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.writer import Spool

MESSAGE = b"From: alice@example.org\r\nSubject: report\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n"
FAST = RetrySchedule(min_backoff=0.2, max_backoff=0.3, max_lifetime=3600, bounce_lifetime=3600)
OK = Delivered(Reply(250, "2.0.0", "ok"), "mda")
BOUNCE = functools.partial(build_dsn, reporting_mta="mx.example.org")


def deferred(code: int, status: str, text: str) -> Deferred:
    return Deferred(Reply(code, status, text), "mx.example.net")


class ScriptedAgent:
    """Answers per address from a script: a list consumed one per attempt (the last one repeats)."""

    def __init__(self, script: dict[str, list[DeliveryOutcome]] | None = None, delay: float = 0.0) -> None:
        self.script = script or {}
        self.delay = delay
        self.calls: list[tuple[float, DeliveryRequest]] = []
        self.active = 0
        self.max_active = 0

    async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        self.calls.append((time.monotonic(), request))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        out: dict[str, DeliveryOutcome] = {}
        for address in request.addresses:
            steps = self.script.get(address, [OK])
            out[address] = steps.pop(0) if len(steps) > 1 else steps[0]
        return out

    def calls_to(self, address: str) -> list[tuple[float, DeliveryRequest]]:
        return [c for c in self.calls if address in c[1].addresses]

    def dsns(self) -> list[DeliveryRequest]:
        return [c[1] for c in self.calls if c[1].sender == ""]


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
    kw.setdefault("bounce", BOUNCE)
    return QueueManager(spool, agent, **kw)  # type: ignore[arg-type]


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
    assert agent.calls[0][1].queue_id == qid and agent.calls[0][1].message == MESSAGE


async def test_per_recipient_outcomes_retry_schedule_and_one_dsn(spool: Spool) -> None:
    agent = ScriptedAgent({
        "temp@example.net": [deferred(451, "4.3.0", "try later"), deferred(452, "4.2.2", "full"),
                             Delivered(Reply(250, "2.0.0", "ok at last"), "mx.example.net")],
        "gone@example.net": [Failed(Reply(550, "5.1.1", "<gone@example.net>: user unknown"), "mx.example.net")],
    })
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        qid = await spool.commit(env("ok@example.net", "temp@example.net", "gone@example.net"), MESSAGE, client="c")
        await eventually(lambda: qid in spool.layout.ids(QueueState.DEFERRED))
        record = spool.layout.load(QueueState.DEFERRED, qid)
        by = {r.address: r for r in record.recipients}
        assert by["ok@example.net"].status is RecipientState.DELIVERED
        assert by["ok@example.net"].reply == Reply(250, "2.0.0", "ok") and by["ok@example.net"].remote == "mda"
        assert by["temp@example.net"].status is RecipientState.DEFERRED
        assert by["temp@example.net"].attempts == 1
        assert by["temp@example.net"].reply == Reply(451, "4.3.0", "try later")
        assert by["temp@example.net"].next_retry == pytest.approx(by["temp@example.net"].updated + 0.2)
        assert by["gone@example.net"].status is RecipientState.FAILED and by["gone@example.net"].notified
        await eventually(lambda: states(spool) == {} and len(agent.calls_to("temp@example.net")) == 3)
    finally:
        await qm.stop()
    tries = agent.calls_to("temp@example.net")
    # Retries only re-send to the recipient that is not final.
    assert [list(c[1].addresses) for c in tries[1:]] == [["temp@example.net"]] * 2
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.2 - 0.02 and gaps[1] >= 0.3 - 0.02  # 0.2, then doubled to the 0.3 cap
    dsns = agent.dsns()
    assert len(dsns) == 1  # exactly one bounce, to the sender, about gone@ only
    assert dsns[0].addresses == ("alice@example.org",)
    dsn_bytes = dsns[0].message
    report = email.message_from_bytes(dsn_bytes)
    assert report.get_content_type() == "multipart/report"
    assert b"Final-Recipient: rfc822; gone@example.net" in dsn_bytes
    assert b"Status: 5.1.1" in dsn_bytes and b"Remote-MTA: dns; mx.example.net" in dsn_bytes
    assert b"temp@example.net" not in dsn_bytes and b"ok@example.net" not in dsn_bytes


async def test_null_sender_failures_make_no_dsn(spool: Spool) -> None:
    agent = ScriptedAgent({"x@example.net": [Failed(Reply(550, "5.1.1", "unknown"))]})
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
    agent = ScriptedAgent({"slow@example.net": [deferred(421, "4.4.2", "timeout")]})
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
    dsn = agent.dsns()[0].message
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
        async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
            if request.addresses[0].startswith("raise"):
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
        assert r.status is RecipientState.DEFERRED and r.reply is not None and r.reply.status == "4.3.0"


async def test_corrupt_records_are_set_aside(spool: Spool) -> None:
    qid = await spool.commit(env("b@example.net"), MESSAGE, client="c")
    path = spool.layout.path(QueueState.INCOMING, qid)
    path.write_bytes(path.read_bytes().replace(b'"queue_id"', b'"queue_ID"'))
    agent = ScriptedAgent()
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        await eventually(lambda: spool.layout.ids(QueueState.CORRUPT) == [qid])
    finally:
        await qm.stop()
    assert agent.calls == []


async def test_hold_release_and_retry_through_queue_control(spool: Spool) -> None:
    agent = ScriptedAgent({"t@example.net": [deferred(451, "4.3.0", "later"), OK]})
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
    agent = ScriptedAgent({"gone@example.net": [Failed(Reply(550, "5.1.1", "unknown"))]})
    qm = make_manager(spool, agent)
    qid = await spool.commit(env("gone@example.net"), MESSAGE, client="c")
    spool.min_free_bytes = 2**62  # the disk fills up: the bounce cannot be committed
    await qm.start()
    try:
        await eventually(lambda: qid in spool.layout.ids(QueueState.DEFERRED))
        r = spool.layout.load(QueueState.DEFERRED, qid).recipients[0]
        assert r.status is RecipientState.FAILED and not r.notified  # kept until the DSN is queued
        spool.min_free_bytes = 0
        await eventually(lambda: states(spool) == {} and bool(agent.dsns()))
    finally:
        await qm.stop()
    assert len(agent.calls_to("gone@example.net")) == 1  # the failed recipient is not tried again


_CRASHING_MANAGER = """
import asyncio, sys
from mailbastion.spool.manager import QueueManager
from mailbastion.spool.writer import Spool

class Hang:
    async def deliver(self, request):
        print("claimed", request.queue_id, flush=True)
        await asyncio.sleep(3600)

async def main():
    qm = QueueManager(Spool(sys.argv[1], min_free_bytes=0), Hang(), bounce=lambda *a, **k: None, scan_interval=0.05)
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
    assert agent.calls[0][1].message == MESSAGE


async def test_a_refused_mda_is_retried_within_seconds_not_on_the_internet_backoff(spool: Spool) -> None:
    down = Deferred(Reply(451, "4.4.2", "LMTP to 127.0.0.1:24: connection refused"), link_down=True)
    agent = ScriptedAgent({"b@example.org": [down, down, down, OK]})
    schedule = RetrySchedule(min_backoff=3600, max_backoff=3600, link_min=0.1, link_max=0.2)
    qm = make_manager(spool, agent, schedule=schedule)
    await qm.start()
    try:
        qid = await spool.commit(env("b@example.org"), MESSAGE, client="c")
        await eventually(lambda: qid in spool.layout.ids(QueueState.DEFERRED))
        r = spool.layout.load(QueueState.DEFERRED, qid).recipients[0]
        assert r.link_failures == 1 and r.attempts == 0  # not an attempt: the MDA was not there
        assert r.next_retry == pytest.approx(r.updated + 0.1)  # seconds, not the hour of min_backoff
        await eventually(lambda: states(spool) == {} and len(agent.calls) == 4)
    finally:
        await qm.stop()
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(agent.calls)]
    assert gaps[0] >= 0.1 - 0.02 and gaps[1] >= 0.2 - 0.02 and gaps[2] >= 0.2 - 0.02  # 0.1, 0.2, capped at 0.2
    assert agent.dsns() == []


async def test_the_request_carries_folder_dsn_parameters_and_only_due_recipients(spool: Spool) -> None:
    from dataclasses import replace as dc_replace

    from mailbastion.core.verdict import Action, Folder, Verdict

    agent = ScriptedAgent()
    qm = make_manager(spool, agent)
    e = Envelope(sender=parse_address("alice@example.org"), body_8bitmime=True, dsn_ret="FULL", dsn_envid="E1")
    e = e.with_recipient(parse_address("b@example.net"), RecipientDsn(("NEVER",)))
    e = dc_replace(e, requiretls=True)
    await qm.start()
    try:
        await spool.commit(e, MESSAGE, client="c", verdict=Verdict(Action.JUNK, 6.0, ()))
        await eventually(lambda: len(agent.calls) == 1)
    finally:
        await qm.stop()
    request = agent.calls[0][1]
    assert request.folder is Folder.JUNK and request.body_8bitmime and request.requiretls
    assert (request.dsn_ret, request.dsn_envid) == ("FULL", "E1")
    assert request.recipients[0].notify == ("NEVER",)


def _notify_env(*pairs: tuple[str, tuple[str, ...]]) -> Envelope:
    e = Envelope(sender=parse_address("alice@example.org"), dsn_envid="ENV-42")
    for address, notify in pairs:
        e = e.with_recipient(parse_address(address), RecipientDsn(notify, f"rfc822;orig-{address}"))
    return e


async def test_notify_never_failure_and_success_decide_what_the_sender_hears(spool: Spool) -> None:
    gone = Failed(Reply(550, "5.1.1", "user unknown"), "mda")
    agent = ScriptedAgent({
        "quiet@example.org": [gone],  # NOTIFY=NEVER: no report even though it failed
        "loud@example.org": [gone],  # NOTIFY=FAILURE
        "mailbox@example.org": [Delivered(Reply(250, "2.0.0", "delivered"), "mda", Handoff.DELIVERED)],
        "relay@example.net": [Delivered(Reply(250, "2.0.0", "queued"), "mx.example.net", Handoff.RELAYED)],
        "onward@example.net": [Delivered(Reply(250, "2.0.0", "queued"), "mx.example.net", Handoff.TRANSFERRED)],
        "silent@example.org": [OK],  # no NOTIFY: success is not reported
    })
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        await spool.commit(_notify_env(
            ("quiet@example.org", ("NEVER",)), ("loud@example.org", ("FAILURE",)),
            ("mailbox@example.org", ("SUCCESS",)), ("relay@example.net", ("SUCCESS",)),
            ("onward@example.net", ("SUCCESS", "FAILURE")), ("silent@example.org", ())), MESSAGE, client="c")
        await eventually(lambda: states(spool) == {} and len(agent.dsns()) == 1)
        await asyncio.sleep(0.2)
    finally:
        await qm.stop()
    [dsn] = agent.dsns()
    report = email.message_from_bytes(dsn.message)
    per_message, *blocks = report.get_payload()[1].get_payload()
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    got = {b["Final-Recipient"]: (b["Action"], b["Status"], b["Original-Recipient"]) for b in blocks}
    assert got == {
        "rfc822; loud@example.org": ("failed", "5.1.1", "rfc822; orig-loud@example.org"),
        "rfc822; mailbox@example.org": ("delivered", "2.0.0", "rfc822; orig-mailbox@example.org"),
        "rfc822; relay@example.net": ("relayed", "2.0.0", "rfc822; orig-relay@example.net"),
    }
    assert report["Subject"] == "Undelivered Mail Returned to Sender"


async def test_a_delay_warning_is_sent_once_to_those_who_want_it(spool: Spool, tmp_path: Path) -> None:
    now = [1_000_000.0]
    clocked = Spool(tmp_path / "spool", min_free_bytes=0, clock=lambda: now[0])
    later = deferred(451, "4.3.0", "greylisted")
    agent = ScriptedAgent({"slow@example.net": [later], "nodelay@example.net": [later]})
    qm = make_manager(clocked, agent, clock=lambda: now[0], delay_warning=100.0,
                      schedule=RetrySchedule(min_backoff=60, max_backoff=60, max_lifetime=10_000))
    await qm.start()
    try:
        qid = await clocked.commit(_notify_env(("slow@example.net", ()), ("nodelay@example.net", ("FAILURE",))),
                                   MESSAGE, client="c")
        await eventually(lambda: qid in clocked.layout.ids(QueueState.DEFERRED))
        assert agent.dsns() == []  # not late yet
        for _ in range(3):  # three more attempts past the warning time: one report only
            now[0] += 120
            attempts = len(agent.calls_to("slow@example.net"))
            await eventually(lambda n=attempts: len(agent.calls_to("slow@example.net")) > n)  # type: ignore[misc]
            await eventually(lambda: qid in clocked.layout.ids(QueueState.DEFERRED))
    finally:
        await qm.stop()
    [dsn] = agent.dsns()
    report = email.message_from_bytes(dsn.message)
    blocks = report.get_payload()[1].get_payload()[1:]
    assert [(b["Final-Recipient"], b["Action"], b["Status"]) for b in blocks] == [
        ("rfc822; slow@example.net", "delayed", "4.3.0")]
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert b"SECRET" not in dsn.message and report.get_payload()[2].get_content_type() == "text/rfc822-headers"


async def test_entries_of_the_directory_layout_are_converted_and_delivered(spool: Spool) -> None:
    from mailbastion.spool.legacy import migrate_legacy_entries

    record = QueueRecord.new("0123456789ABCDEF01", env("b@example.net"), arrival=1.0, client="c",
                             size=len(MESSAGE))
    for state, qid in ((QueueState.DEFERRED, "0123456789ABCDEF01"), (QueueState.INCOMING, "0123456789ABCDEF02")):
        d = spool.layout.state_dir(state) / qid
        d.mkdir()
        (d / "message.eml").write_bytes(MESSAGE)
        (d / "record.json").write_text(record.to_json().decode().replace("0123456789ABCDEF01", qid)
                                       .replace('"version":2', '"version":1'))
    # an interrupted earlier conversion: the queue file was staged, the directory already set aside
    staged = spool.layout.state_dir(QueueState.INCOMING)
    (staged / ".0123456789ABCDEF03.legacy").mkdir()
    from mailbastion.spool import queue_file
    (staged / ".0123456789ABCDEF03.mbq").write_bytes(
        queue_file.encode(QueueRecord.new("0123456789ABCDEF03", env("c@example.net"), arrival=1.0, client="c",
                                          size=len(MESSAGE)), MESSAGE))
    assert migrate_legacy_entries(spool.layout) == 2
    assert sorted(q for s in QueueState for q in spool.layout.ids(s)) == [
        "0123456789ABCDEF01", "0123456789ABCDEF02", "0123456789ABCDEF03"]
    assert sorted(p.name for p in staged.iterdir()) == ["0123456789ABCDEF02", "0123456789ABCDEF03"]
    agent = ScriptedAgent()
    qm = make_manager(spool, agent)
    await qm.start()
    try:
        await eventually(lambda: states(spool) == {} and len(agent.calls) == 3)
    finally:
        await qm.stop()
    assert all(c[1].message == MESSAGE for c in agent.calls)


async def test_a_dsn_that_cannot_be_built_does_not_hold_the_entry(spool: Spool) -> None:
    def broken(*args: object, **kw: object) -> None:
        raise ValueError("bug in the report builder")

    agent = ScriptedAgent({"gone@example.net": [Failed(Reply(550, "5.1.1", "unknown"))]})
    qm = make_manager(spool, agent, bounce=broken)
    await qm.start()
    try:
        await spool.commit(env("gone@example.net"), MESSAGE, client="c")
        await eventually(lambda: states(spool) == {} and len(agent.calls) == 1)
    finally:
        await qm.stop()


def _count_listings(spool: Spool) -> list[QueueState]:
    """The manager's listings of a state directory, recorded as they happen."""
    listed: list[QueueState] = []
    ids = spool.layout.ids

    def counting(state: QueueState) -> list[str]:
        if sys._getframe(1).f_globals["__name__"].startswith("mailbastion.spool.manager"):
            listed.append(state)
        return ids(state)

    spool.layout.ids = counting  # type: ignore[method-assign]
    return listed


async def test_wakes_between_full_scans_list_only_incoming(spool: Spool) -> None:
    """Under load a scan follows every finished delivery: it lists incoming/ on the loop; deferred/ (a
    worker-thread hand-off, and possibly large) is listed only by the full scan every scan_interval."""
    listed = _count_listings(spool)
    agent = ScriptedAgent()
    qm = make_manager(spool, agent, scan_interval=3600)  # one full scan at start, none by the timer
    await qm.start()
    try:
        for n in range(5):
            await spool.commit(env(f"r{n}@example.net"), MESSAGE, client="c")  # each commit wakes the manager
            await eventually(lambda n=n: len(agent.calls) == n + 1 and states(spool) == {})
        late = await spool.commit(env("late@example.net"), MESSAGE, client="c")
        await eventually(lambda: states(spool) == {})
        assert listed.count(QueueState.DEFERRED) == 1 and listed.count(QueueState.INCOMING) >= 6
        assert late in {c[1].queue_id for c in agent.calls}
    finally:
        await qm.stop()


async def test_a_full_scan_finds_what_was_moved_into_deferred(spool: Spool) -> None:
    agent = ScriptedAgent({"d@example.net": [deferred(451, "4.3.0", "later"), OK]})
    qm = make_manager(spool, agent, scan_interval=3600, schedule=RetrySchedule(min_backoff=0.01, max_backoff=0.01))
    await qm.start()
    try:
        qid = await spool.commit(env("d@example.net"), MESSAGE, client="c")
        await eventually(lambda: len(agent.calls) == 1 and qid in spool.layout.ids(QueueState.DEFERRED))
        # the manager forgets it (as when another process or the CLI put it there); only a full scan sees it
        qm._deferred.clear()
        assert await qm.run_once() == 1
        await eventually(lambda: states(spool) == {})
    finally:
        await qm.stop()
    assert len(agent.calls) == 2


async def test_a_full_scan_due_while_every_slot_is_busy_runs_when_one_frees(spool: Spool) -> None:
    """Under constant load the timer finds no free slot; the full scan (deferred/ listed) must then follow the
    next finished delivery instead of being put off for another interval, again and again."""
    for n in range(8):
        await spool.commit(env(f"r{n}@example.net"), MESSAGE, client="c")
    listed = _count_listings(spool)
    agent = ScriptedAgent(delay=0.15)  # each delivery outlasts several scan intervals
    qm = make_manager(spool, agent, scan_interval=0.02, concurrency=1)
    await qm.start()
    try:
        await eventually(lambda: len(agent.calls) == 8 and states(spool) == {}, timeout=30)
    finally:
        await qm.stop()
    assert listed.count(QueueState.DEFERRED) >= 7  # after (nearly) every delivery, not only at the start


async def test_a_backlog_is_listed_once_not_once_per_delivery(spool: Spool) -> None:
    """Behind by n entries, the manager must not list incoming/ (n names) after every delivery: that made
    the cost per message grow with the backlog (bench/queue_backlog.py: 3.9 times at 20,000). The listing
    is used up first; the order stays oldest first."""
    backlog = [await spool.commit(env(f"r{n}@example.net"), MESSAGE, client="c") for n in range(60)]
    listed = _count_listings(spool)
    agent = ScriptedAgent()
    qm = make_manager(spool, agent, scan_interval=3600, concurrency=3)  # one full scan at start
    await qm.start()
    try:
        await eventually(lambda: len(agent.calls) == 60 and states(spool) == {}, timeout=30)
    finally:
        await qm.stop()
    assert [c[1].queue_id for c in agent.calls] == backlog
    # the full scan's listing serves the 60; one more listing of incoming/ finds it empty (and maybe
    # another before the last tasks finish), not one per delivery
    assert listed.count(QueueState.INCOMING) <= 4, listed


async def test_deferred_entries_are_claimed_in_due_order_and_a_moved_one_only_once(spool: Spool) -> None:
    """Due deferred entries come from a heap: by due time, and an entry the CLI moved meanwhile (retry,
    delete) is neither lost nor claimed twice."""
    agent = ScriptedAgent({f"d{n}@example.net": [deferred(451, "4.3.0", "later"), OK] for n in range(4)})
    now = [1000.0]
    qm = make_manager(spool, agent, scan_interval=3600, clock=lambda: now[0],
                      schedule=RetrySchedule(min_backoff=100, max_backoff=100))
    control = QueueControl(spool.root)
    await qm.start()
    try:
        ids = []
        for n in (3, 1, 0, 2):  # deferred in this order, one clock step apart: due at 1100 + step
            ids.append(await spool.commit(env(f"d{n}@example.net"), MESSAGE, client="c"))
            await eventually(lambda: ids[-1] in spool.layout.ids(QueueState.DEFERRED))
            now[0] += 1
        control.delete(ids[1])  # d1: gone for good
        control.retry(ids[2])  # d0: now, through incoming/
        await eventually(lambda: len(agent.calls_to("d0@example.net")) == 2)
        now[0] = 2000.0  # every other entry due
        qm.wake()
        await eventually(lambda: states(spool) == {})
    finally:
        await qm.stop()
    second = [c[1].addresses[0] for c in agent.calls[4:]]
    assert second == ["d0@example.net", "d3@example.net", "d2@example.net"]  # d0 by retry, then by due time
    assert not agent.calls_to("d1@example.net")[1:]


async def test_commits_of_another_process_wake_the_manager_through_its_fifo(spool: Spool) -> None:
    """An SMTP acceptor process, the CLI or the portal commit through a Spool of their own, which the
    manager does not listen to: they poke `<spool>/wakeup`, and the entry is delivered now, not at the
    next full scan (an hour here)."""
    agent = ScriptedAgent()
    qm = make_manager(spool, agent, scan_interval=3600)
    await qm.start()
    try:
        other = Spool(spool.root, min_free_bytes=0)  # as another process would have
        qid = await other.commit(env("a@example.net"), MESSAGE, client="c")
        await eventually(lambda: qid not in queued_ids(spool), timeout=20)
        # the CLI's retry of a deferred entry wakes it too
        agent.script["b@example.net"] = [deferred(451, "4.3.0", "later"), OK]
        late = await other.commit(env("b@example.net"), MESSAGE, client="c")
        await eventually(lambda: late in spool.layout.ids(QueueState.DEFERRED), timeout=20)
        QueueControl(spool.root).flush()
        await eventually(lambda: states(spool) == {}, timeout=20)
    finally:
        await qm.stop()
    assert len(agent.calls_to("b@example.net")) == 2
