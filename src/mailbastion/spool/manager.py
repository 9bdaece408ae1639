"""The queue manager: the only scheduler (Postfix qmgr). It alone moves entries out of incoming/.

    incoming/ ──claim──▶ active/ ──deliver──▶ all recipients final ──▶ deleted (DSN first if any failed)
                  ▲                       └─▶ some still pending ──▶ deferred/ (next retry time)
    deferred/ ────┘ (when due)        hold/ and corrupt/ are never touched here.

- Pick-up: a scan every `scan_interval` seconds, and at once when `wake()` is called (the in-process
  Spool calls it after each commit). Entries put back in incoming/ by `mailbastion queue retry` or
  `release` are seen by the next scan.
- At most `concurrency` entries are active at once; the rest wait in their directories.
- Per-recipient status: an entry claimed from deferred/ retries only its recipients that are due;
  an entry from incoming/ tries every recipient not final.
- Crash safety: `start()` puts whatever a previous run left in active/ back into incoming/, so an
  interrupted delivery is resumed (at-least-once: a recipient may get a message twice, never zero).
- Giving up: a permanent failure, or a temporary one after the lifetime, makes the recipient
  `failed`; the sender gets one RFC 3464 DSN (never the null sender), committed through the Spool.
- `stop()` stops claiming, lets in-flight deliveries finish (or, after `timeout`, cancels them;
  their entries stay in active/ and the next start resumes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from mailbastion.config.schema import Settings
from mailbastion.core.errors import SpoolFull
from mailbastion.delivery.agent import Delivered, DeliveryAgent, DeliveryOutcome, PermFailed, TempFailed
from mailbastion.delivery.dsn import build_dsn
from mailbastion.spool.layout import QueueState
from mailbastion.spool.record import QueueRecord, RecipientState, RecipientStatus, RecordError
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.writer import Spool

log = logging.getLogger("mailbastion.queue")

NO_OUTCOME = "4.3.0 delivery agent gave no outcome for this recipient"


class QueueManager:
    def __init__(
        self,
        spool: Spool,
        agent: DeliveryAgent,
        *,
        schedule: RetrySchedule | None = None,
        scan_interval: float = 1.0,
        concurrency: int = 20,
        hostname: str = "localhost",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.layout = spool.layout
        self.agent = agent
        self.schedule = schedule or RetrySchedule()
        self.scan_interval = scan_interval
        self.concurrency = concurrency
        self.hostname = hostname
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._deferred: dict[str, float] = {}  # queue id -> when it is due
        self._idle = asyncio.Event()
        self._idle.set()
        spool.add_listener(lambda _qid: self.wake())

    @staticmethod
    def from_settings(settings: Settings, spool: Spool, agent: DeliveryAgent) -> QueueManager:
        s = settings.spool
        return QueueManager(spool, agent, schedule=RetrySchedule.from_settings(s),
                            scan_interval=s.scan_interval_seconds, concurrency=s.delivery_concurrency,
                            hostname=settings.server.hostname)

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover from a previous run, then start scanning. Returns at once."""
        if self._runner is not None:
            raise RuntimeError("queue manager already started")
        self._stopping = False
        resumed = await asyncio.to_thread(self._recover)
        if resumed:
            log.warning("resuming %d message(s) left in active/ by an interrupted run", resumed)
        self._runner = asyncio.create_task(self._run(), name="queue-manager")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming work and wait for in-flight deliveries (at most `timeout` seconds)."""
        self._stopping = True
        self._wake.set()
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
        self.layout.ensure()
        self.layout.sweep_tmp()
        count = 0
        for qid in self.layout.ids(QueueState.ACTIVE):
            with contextlib.suppress(FileNotFoundError):
                self.layout.move(qid, QueueState.ACTIVE, QueueState.INCOMING)
                count += 1
        return count

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._scan()
            except Exception:  # a bad scan must not kill the only scheduler
                log.exception("queue scan failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.scan_interval)
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

    async def _scan(self) -> int:
        if self._stopping or len(self._inflight) >= self.concurrency:
            return 0
        incoming, present, fresh = await asyncio.to_thread(self._list_work, frozenset(self._deferred))
        now = self._clock()
        for qid in [q for q in self._deferred if q not in present]:
            del self._deferred[qid]  # moved by the CLI (retry, hold, delete)
        for qid, when in fresh.items():
            if qid not in self._inflight:
                self._deferred[qid] = now if when is None else when
        due = [q for _, q in sorted((t, q) for q, t in self._deferred.items() if t <= now)]
        claimed = 0
        for src, ids in ((QueueState.INCOMING, incoming), (QueueState.DEFERRED, due)):
            for qid in ids:
                if self._stopping or len(self._inflight) >= self.concurrency:
                    return claimed
                try:
                    await asyncio.to_thread(self.layout.move, qid, src, QueueState.ACTIVE)
                except FileNotFoundError:
                    continue  # the CLI moved or deleted it meanwhile
                self._deferred.pop(qid, None)
                self._idle.clear()
                task = asyncio.create_task(self._process(qid, every=src is QueueState.INCOMING),
                                           name=f"deliver-{qid}")
                self._inflight[qid] = task
                task.add_done_callback(functools.partial(self._finished, qid))
                claimed += 1
        return claimed

    def _finished(self, qid: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(qid, None)
        if not self._inflight:
            self._idle.set()
        self._wake.set()  # a slot is free: look for more work

    # -- one message ---------------------------------------------------------------------------
    def _load(self, qid: str) -> tuple[QueueRecord, bytes]:
        record = self.layout.load(QueueState.ACTIVE, qid)
        return record, self.layout.message_path(QueueState.ACTIVE, qid).read_bytes()

    async def _process(self, qid: str, *, every: bool) -> None:
        try:
            await self._process_entry(qid, every=every)
        except asyncio.CancelledError:
            raise
        except Exception:  # the entry stays in active/ and is resumed at the next start
            log.exception("id=%s processing failed; left in active/", qid)

    async def _process_entry(self, qid: str, *, every: bool) -> None:
        try:
            record, message = await asyncio.to_thread(self._load, qid)
        except FileNotFoundError:
            log.error("id=%s vanished from active/", qid)
            return
        except (RecordError, OSError) as exc:
            log.error("id=%s unreadable (%s): moved to corrupt/", qid, exc)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.layout.move, qid, QueueState.ACTIVE, QueueState.CORRUPT)
            return
        now = self._clock()
        due = [r.address for r in record.pending if every or r.next_retry is None or r.next_retry <= now]
        if due:
            outcomes = await self._deliver(record.restricted_to(due), message)
            record = self._apply(record, {a: outcomes.get(a, TempFailed(NO_OUTCOME)) for a in due}, self._clock())
        record = await self._notify(record, message)
        due_at = await asyncio.to_thread(self._settle, record)
        if due_at is not None:
            self._deferred[qid] = due_at

    async def _deliver(self, view: QueueRecord, message: bytes) -> dict[str, DeliveryOutcome]:
        try:
            return await self.agent.deliver(view, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the agent's contract says it should not raise; stay safe if it does
            log.exception("id=%s delivery agent raised", view.queue_id)
            return {r.address: TempFailed(f"4.3.0 delivery agent error: {exc}") for r in view.pending}

    def _apply(self, record: QueueRecord, outcomes: dict[str, DeliveryOutcome], now: float) -> QueueRecord:
        expired = self.schedule.is_expired(record.arrival, now, null_sender=record.is_null_sender)
        updates: dict[str, RecipientStatus] = {}
        for address, outcome in outcomes.items():
            r = record.recipient(address)
            attempts = r.attempts + 1
            if isinstance(outcome, Delivered):
                new = replace(r, status=RecipientState.DELIVERED, attempts=attempts, response=outcome.response,
                              next_retry=None, updated=now)
            elif isinstance(outcome, PermFailed):
                new = replace(r, status=RecipientState.FAILED, attempts=attempts, last_error=outcome.error,
                              next_retry=None, updated=now)
            elif expired:
                days = self.schedule.lifetime(null_sender=record.is_null_sender) / 86400
                new = replace(r, status=RecipientState.FAILED, attempts=attempts, next_retry=None, updated=now,
                              last_error=f"4.4.7 message expired after {days:g} days in the queue; "
                                         f"last error: {outcome.error}")
            else:
                new = replace(r, status=RecipientState.DEFERRED, attempts=attempts, last_error=outcome.error,
                              next_retry=self.schedule.next_retry(attempts, now), updated=now)
            updates[address] = new
            log.info("id=%s to=<%s> status=%s attempts=%d %s", record.queue_id, address, new.status.value,
                     attempts, new.response or new.last_error)
        return record.with_recipients(updates)

    async def _notify(self, record: QueueRecord, message: bytes) -> QueueRecord:
        """Queue one DSN for failed recipients not yet reported. On SpoolFull the entry keeps them
        unreported and a later pass tries again."""
        unreported = [r for r in record.recipients if r.status is RecipientState.FAILED and not r.notified]
        if not unreported:
            return record
        dsn = build_dsn(record, message, unreported, reporting_mta=self.hostname, now=self._clock())
        if dsn is not None:
            try:
                dsn_id = await self.spool.commit(dsn.envelope, dsn.message, client="dsn")
            except SpoolFull as exc:
                log.error("id=%s DSN could not be queued (%s); will retry", record.queue_id, exc)
                return record
            log.info("id=%s sender non-delivery notification: %s", record.queue_id, dsn_id)
        return record.with_recipients({r.address: replace(r, notified=True) for r in unreported})

    def _settle(self, record: QueueRecord) -> float | None:
        """Blocking: delete a finished entry, else save its record, move it to deferred/ and return
        when it is due again."""
        qid = record.queue_id
        reported = all(r.notified or r.status is not RecipientState.FAILED for r in record.recipients)
        if record.is_done and (reported or record.is_null_sender):
            self.layout.remove(qid, QueueState.ACTIVE)
            log.info("id=%s removed", qid)
            return None
        self.layout.save(QueueState.ACTIVE, record)
        self.layout.move(qid, QueueState.ACTIVE, QueueState.DEFERRED)
        return record.next_retry or self._clock() + self.schedule.min_backoff
