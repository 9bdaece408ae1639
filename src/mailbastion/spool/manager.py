"""The queue manager: the only scheduler (Postfix qmgr). It alone moves entries out of incoming/.

    incoming/ ──claim──▶ active/ ──deliver──▶ all recipients final ──▶ deleted (DSN first if one is due)
                  ▲                       └─▶ some still pending ──▶ deferred/ (next retry time)
    deferred/ ────┘ (when due)        hold/ and corrupt/ are never touched here.

- It is given a `DeliveryAgent` (the port of core/ports.py) and a `bounce` callable that builds a
  delivery status notification; it knows no agent and no DSN format (apps/ wires delivery/ into it).
- Pick-up: a scan every `scan_interval` seconds, and at once when `wake()` is called: the in-process
  Spool calls it after each commit; other processes (SMTP acceptors, the CLI's `queue retry`, `flush`
  and `release`, the portal) poke the spool's wake-up FIFO, which calls it (spool/wakeup.py). A scan
  between full ones takes incoming entries from the last listing until it is used up, and due deferred
  entries from a heap: its cost does not grow with the backlog.
- At most `concurrency` entries are active at once; the rest wait in their directories.
- Per-recipient status: an entry claimed from deferred/ retries only its recipients that are due;
  an entry from incoming/ tries every recipient not final.
- Retry: the schedule's back-off after a 4xx; within seconds (1, 2, 4 ... 60 s) when our own MDA refused
  or dropped the connection (`Deferred.link_down`), which is a start-up or restart, not the Internet.
- Crash safety: `start()` puts whatever a previous run left in active/ back into incoming/, so an
  interrupted delivery is resumed (the MDA delivers a queue id once; other hops may see it twice,
  never zero times).
- Reports (RFC 3461 NOTIFY, RFC 3464): a recipient that failed for good (or expired) is reported unless
  its NOTIFY excludes FAILURE; one delivered into a mailbox or relayed to a hop without DSN is reported
  when its NOTIFY asks for SUCCESS; with `delay_warning` set, one still deferred after that long is
  reported once as delayed if it wants DELAY. One DSN per pass, never to the null sender, committed
  through the Spool; on SpoolFull the entry keeps them unreported and a later pass tries again.
- `stop()` stops claiming, lets in-flight deliveries finish (or, after `timeout`, cancels them;
  their entries stay in active/ and the next start resumes them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import heapq
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from mailbastion.config.schema import Settings
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import SpoolFull
from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome, Failed, Handoff, describe
from mailbastion.core.ports import DeliveryAgent, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.spool.layout import QueueState
from mailbastion.spool.legacy import migrate_legacy_entries
from mailbastion.spool.record import QueueRecord, RecipientState, RecipientStatus, RecordError
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.wakeup import WakeupReader
from mailbastion.spool.writer import Spool

log = logging.getLogger("mailbastion.queue")

NO_OUTCOME = Reply(451, "4.3.0", "delivery agent gave no outcome for this recipient")


class Notification(Protocol):
    """A message to queue for the sender (a DSN): its envelope and bytes."""

    @property
    def envelope(self) -> Envelope: ...

    @property
    def message(self) -> bytes: ...


class Bounce(Protocol):
    def __call__(self, record: QueueRecord, message: bytes, report: Sequence[RecipientStatus], *,
                 now: float) -> Notification | None:
        """A report to the sender about `report` (recipients failed, delivered or delayed, each judged by
        its status), or None when there is nobody to tell (the null sender)."""
        ...


class QueueManager:
    def __init__(
        self,
        spool: Spool,
        agent: DeliveryAgent,
        *,
        bounce: Bounce,
        schedule: RetrySchedule | None = None,
        scan_interval: float = 1.0,
        concurrency: int = 20,
        delay_warning: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.layout = spool.layout
        self.agent = agent
        self.bounce = bounce
        self.schedule = schedule or RetrySchedule()
        self.scan_interval = scan_interval
        self.concurrency = concurrency
        self.delay_warning = delay_warning  # seconds before a "delayed" DSN; None: never (Postfix's default)
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._deferred: dict[str, float] = {}  # queue id -> when it is due
        # The same times in a heap, (due, id), so that a scan takes what is due without sorting every deferred
        # entry; an item whose time no longer matches _deferred is stale and skipped.
        self._due: list[tuple[float, str]] = []
        # incoming/ as last listed, oldest first, less what was claimed since: a scan lists the directory
        # again only when this is used up (or at a full scan), not once per finished delivery, so a backlog
        # of n entries costs n names listed in all, not n per message.
        self._incoming: collections.deque[str] = collections.deque()
        self._idle = asyncio.Event()
        self._idle.set()
        spool.add_listener(lambda _qid: self.wake())
        self._wakeups: WakeupReader | None = None  # commits of other processes (spool/wakeup.py)

    @staticmethod
    def from_settings(settings: Settings, spool: Spool, agent: DeliveryAgent, *, bounce: Bounce) -> QueueManager:
        s = settings.spool
        return QueueManager(spool, agent, bounce=bounce, schedule=RetrySchedule.from_settings(s),
                            scan_interval=s.scan_interval_seconds, concurrency=s.delivery_concurrency,
                            delay_warning=float(s.delay_warning_seconds) or None)

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover from a previous run, then start scanning. Returns at once."""
        if self._runner is not None:
            raise RuntimeError("queue manager already started")
        self._stopping = False
        resumed = await asyncio.to_thread(self._recover)
        if resumed:
            log.warning("resuming %d message(s) left in active/ by an interrupted run", resumed)
        self._wakeups = WakeupReader(self.layout.root)
        self._wakeups.attach(self.wake)
        self._runner = asyncio.create_task(self._run(), name="queue-manager")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming work and wait for in-flight deliveries (at most `timeout` seconds)."""
        self._stopping = True
        self._wake.set()
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None
        if self._runner is not None:
            await self._runner
            self._runner = None
        tasks = list(self._inflight.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late)
                log.warning("stopped with %d delivery(ies) interrupted; they resume at next start", len(late))

    def wake(self) -> None:
        """Scan now instead of at the next interval (cheap; safe to call often)."""
        self._wake.set()

    async def idle(self) -> None:
        """Wait until nothing is being delivered (tests and `stop()` helpers)."""
        await self._idle.wait()

    async def run_once(self) -> int:
        """One scan: claim what is due, up to the free slots. Returns how many were claimed."""
        return await self._scan()

    # -- scanning ------------------------------------------------------------------------------
    def _recover(self) -> int:
        """Blocking: the layout exists, old directory entries are converted, active/ goes back to incoming/.
        (tmp/ is emptied by the runtime before any writer starts: acceptor processes may write already.)"""
        self.layout.ensure()
        migrate_legacy_entries(self.layout)
        count = 0
        for qid in self.layout.ids(QueueState.ACTIVE):
            with contextlib.suppress(FileNotFoundError):
                self.layout.move(qid, QueueState.ACTIVE, QueueState.INCOMING)
                count += 1
        return count

    async def _run(self) -> None:
        full_due = 0.0
        while not self._stopping:
            now = time.monotonic()
            busy = len(self._inflight) >= self.concurrency  # no slot: the scan would claim nothing
            full = now >= full_due and not busy
            if full:
                full_due = now + self.scan_interval
            try:
                await self._scan(full=full)
            except Exception:  # a bad scan must not kill the only scheduler
                log.exception("queue scan failed")
            # Until the next full scan is due; when it is due but every slot is busy, until a slot frees
            # (a finished delivery wakes us), so that a full scan is put off, never skipped.
            wait = None if busy and now >= full_due else max(full_due - time.monotonic(), 0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # no task per wait (wait_for makes one)
                    await self._wake.wait()
            self._wake.clear()

    def _list_work(self, known: frozenset[str]) -> tuple[list[str], set[str], dict[str, float | None]]:
        """Blocking: incoming ids, deferred ids present, and the due time of deferred ids not `known`
        (None: due now, including unreadable ones, which _process sends to corrupt/)."""
        incoming = self.layout.ids(QueueState.INCOMING)
        present = set(self.layout.ids(QueueState.DEFERRED))
        fresh: dict[str, float | None] = {}
        for qid in present - known:
            try:
                fresh[qid] = self.layout.load(QueueState.DEFERRED, qid).next_retry
            except FileNotFoundError:
                continue
            except (RecordError, OSError):
                fresh[qid] = None
        return incoming, present, fresh

    async def _scan(self, *, full: bool = True) -> int:
        """Claim what is due. A full scan (every `scan_interval`, and `run_once`) lists incoming/ and deferred/
        in a worker thread: entries the CLI moved in or out, and the due times of entries this process does
        not know yet. The scans in between (woken by a finished delivery or a commit, under load about once
        per message) take incoming entries from what the last listing found, listing incoming/ again on the
        loop (a directory in the page cache: less than the thread hand-off) only once those are used up,
        and deferred entries from what the last full scan learnt."""
        if self._stopping or len(self._inflight) >= self.concurrency:
            return 0
        now = self._clock()
        if full:
            incoming, present, fresh = await asyncio.to_thread(self._list_work, frozenset(self._deferred))
            self._incoming = collections.deque(incoming)
            now = self._clock()
            for qid in [q for q in self._deferred if q not in present]:
                del self._deferred[qid]  # moved by the CLI (retry, hold, delete)
            for qid, when in fresh.items():
                if qid not in self._inflight:
                    self._set_due(qid, now if when is None else when)
            if len(self._due) > 2 * len(self._deferred) + 64:  # mostly stale items: rebuild
                self._due = [(t, q) for q, t in self._deferred.items()]
                heapq.heapify(self._due)
        elif not self._incoming:
            self._incoming = collections.deque(self.layout.ids(QueueState.INCOMING))
        claimed = 0
        incoming, due = self._incoming, self._due
        while len(self._inflight) < self.concurrency and not self._stopping:
            if incoming:
                qid, src = incoming.popleft(), QueueState.INCOMING
            elif due and due[0][0] <= now:
                when, qid = heapq.heappop(due)
                if self._deferred.get(qid) != when:
                    continue  # stale: claimed, moved by the CLI, or due at another time now
                src = QueueState.DEFERRED
            else:
                break
            try:
                self.layout.move(qid, src, QueueState.ACTIVE)  # one rename, not fsynced: no thread needed
            except FileNotFoundError:
                continue  # the CLI moved or deleted it meanwhile (or a listing was older than a claim)
            self._deferred.pop(qid, None)
            self._idle.clear()
            task = asyncio.create_task(self._process(qid, every=src is QueueState.INCOMING), name=f"deliver-{qid}")
            self._inflight[qid] = task
            task.add_done_callback(functools.partial(self._finished, qid))
            claimed += 1
        return claimed

    def _set_due(self, qid: str, when: float) -> None:
        self._deferred[qid] = when
        heapq.heappush(self._due, (when, qid))

    def _finished(self, qid: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(qid, None)
        if not self._inflight:
            self._idle.set()
        self._wake.set()  # a slot is free: look for more work

    # -- one message ---------------------------------------------------------------------------
    async def _process(self, qid: str, *, every: bool) -> None:
        try:
            await self._process_entry(qid, every=every)
        except asyncio.CancelledError:
            raise
        except Exception:  # the entry stays in active/ and is resumed at the next start
            log.exception("id=%s processing failed; left in active/", qid)

    async def _process_entry(self, qid: str, *, every: bool) -> None:
        try:
            # Read on the loop: a file the acceptor has just written comes from the page cache in microseconds,
            # less than a worker-thread round trip (Postfix's qmgr reads its queue files the same way).
            record, message = self.layout.read(QueueState.ACTIVE, qid)
        except FileNotFoundError:
            log.error("id=%s vanished from active/", qid)
            return
        except (RecordError, OSError) as exc:
            log.error("id=%s unreadable (%s): moved to corrupt/", qid, exc)
            with contextlib.suppress(OSError):
                self.layout.move(qid, QueueState.ACTIVE, QueueState.CORRUPT)
            return
        now = self._clock()
        due = [r.address for r in record.pending if every or r.next_retry is None or r.next_retry <= now]
        if due:
            outcomes = await self._deliver(record.request(due, message))
            record = self._apply(record, {a: outcomes.get(a) or Deferred(NO_OUTCOME) for a in due}, self._clock())
        record = await self._notify(record, message)
        due_at = await self._settle(record, message)
        if due_at is not None:
            self._set_due(qid, due_at)

    async def _deliver(self, request: DeliveryRequest) -> Mapping[str, DeliveryOutcome]:
        try:
            return await self.agent.deliver(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the agent's contract says it should not raise; stay safe if it does
            log.exception("id=%s delivery agent raised", request.queue_id)
            error = Deferred(Reply(451, "4.3.0", f"delivery agent error: {exc}"))
            return {a: error for a in request.addresses}

    def _apply(self, record: QueueRecord, outcomes: dict[str, DeliveryOutcome], now: float) -> QueueRecord:
        expired = self.schedule.is_expired(record.arrival, now, null_sender=record.is_null_sender)
        updates: dict[str, RecipientStatus] = {}
        for address, outcome in outcomes.items():
            r = record.recipient(address)
            change: dict[str, Any]  # one dataclasses.replace per recipient: it is dear on this path
            if isinstance(outcome, Delivered):
                change = {"status": RecipientState.DELIVERED, "attempts": r.attempts + 1, "handoff": outcome.handoff,
                          "next_retry": None, "link_failures": 0}
            elif isinstance(outcome, Failed):
                change = {"status": RecipientState.FAILED, "attempts": r.attempts + 1, "next_retry": None,
                          "link_failures": 0}
            elif expired:
                change = {"status": RecipientState.FAILED, "expired": True, "next_retry": None,
                          "attempts": r.attempts + (0 if outcome.link_down else 1)}
            elif outcome.link_down:  # our MDA is starting or restarting: seconds, not the Internet back-off
                failures = r.link_failures + 1
                change = {"status": RecipientState.DEFERRED, "link_failures": failures,
                          "next_retry": now + self.schedule.link_backoff(failures)}
            else:
                change = {"status": RecipientState.DEFERRED, "attempts": r.attempts + 1, "link_failures": 0,
                          "next_retry": self.schedule.next_retry(r.attempts + 1, now)}
            new = replace(r, reply=outcome.reply, remote=outcome.remote, updated=now, **change)
            updates[address] = new
            log.info("id=%s to=<%s> status=%s attempts=%d%s %s%s", record.queue_id, address, new.status.value,
                     new.attempts, f" relay={outcome.remote}" if outcome.remote else "", describe(outcome.reply),
                     " (expired)" if new.expired else "")
        return record.with_recipients(updates)

    def _report_due(self, record: QueueRecord, r: RecipientStatus, now: float) -> tuple[bool, bool]:
        """(to report now, nothing (more) to report for good) for one recipient."""
        if r.notified:
            return False, True
        if r.status is RecipientState.FAILED:
            return r.wants("FAILURE"), True
        if r.status is RecipientState.DELIVERED:
            # RFC 3461 §5.2.2/5.3: success is ours to report for final delivery or a relay to a hop without
            # DSN; a hop that took NOTIFY with the message reports from then on.
            return r.handoff is not Handoff.TRANSFERRED and r.wants("SUCCESS"), True
        late = self.delay_warning is not None and now - record.arrival >= self.delay_warning
        return late and not r.delay_notified and r.wants("DELAY") and r.status is RecipientState.DEFERRED, False

    async def _notify(self, record: QueueRecord, message: bytes) -> QueueRecord:
        """Queue one DSN for the recipients whose outcome the sender asked to hear about; mark what needs
        no report. On SpoolFull nothing is marked and a later pass tries again."""
        now = self._clock()
        report: list[RecipientStatus] = []
        settled: list[RecipientStatus] = []
        for r in record.recipients:
            due, final = self._report_due(record, r, now)
            if due:
                report.append(r)
            if final and not r.notified:
                settled.append(r)
        if report and not record.is_null_sender:
            try:
                notice = self.bounce(record, message, report, now=now)
            except Exception:  # a report we cannot build must not hold the entry in the queue for ever
                log.exception("id=%s DSN could not be built; the sender is not notified", record.queue_id)
                notice = None
            if notice is not None:
                try:
                    dsn_id = await self.spool.commit(notice.envelope, notice.message, client="dsn")
                except SpoolFull as exc:
                    log.error("id=%s DSN could not be queued (%s); will retry", record.queue_id, exc)
                    return record
                log.info("id=%s sender notification: %s (%s)", record.queue_id, dsn_id,
                         ",".join(sorted({r.status.value for r in report})))
        updates = {r.address: replace(r, notified=True) for r in settled}
        updates.update({r.address: replace(r, delay_notified=True) for r in report if not r.is_final})
        return record.with_recipients(updates) if updates else record

    async def _settle(self, record: QueueRecord, message: bytes) -> float | None:
        """Delete a finished entry, else rewrite its record, move it to deferred/ and return when it is due
        again. Neither the unlink nor the move is fsynced (layout.py says why)."""
        qid = record.queue_id
        if record.is_done and all(r.notified for r in record.recipients):
            self.layout.remove(qid, QueueState.ACTIVE)
            log.info("id=%s removed", qid)
            return None
        await asyncio.to_thread(self.layout.rewrite, QueueState.ACTIVE, record, message)
        self.layout.move(qid, QueueState.ACTIVE, QueueState.DEFERRED)
        return record.next_retry or self._clock() + self.schedule.min_backoff
