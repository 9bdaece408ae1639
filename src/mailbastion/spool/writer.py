"""The only way into the queue: `Spool.commit` (the SpoolWriter port of core/ports.py).

A 250 is a promise. `commit` returns only once the message and its record are durable in incoming/:

    tmp/<id>        write record + message in one file, fsync it          (in a worker thread)
    rename          tmp/<id> -> incoming/<id>
    fsync incoming/ one fsync for every commit renamed meanwhile          (group commit, durable.GroupSync,
                                                                           in the same worker thread)

A crash before the rename leaves only tmp/ debris (cleared at the next start-up); after the directory
fsync the entry is whole and will be delivered. Under load the commits of one process share their
directory fsyncs, so the cost per message falls to one file fsync plus a share of one directory fsync.
The blocking I/O runs in worker threads so the event loop keeps serving other sessions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from mailbastion.config.schema import Settings
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import SpoolFull
from mailbastion.core.threads import run_blocking
from mailbastion.core.verdict import Verdict
from mailbastion.durable import GroupSync
from mailbastion.spool import wakeup
from mailbastion.spool.layout import QueueState, SpoolLayout, new_queue_id
from mailbastion.spool.record import QueueRecord

log = logging.getLogger("mailbastion.spool")


class Spool:
    """Commits messages durably into `<root>/incoming/`.

    `min_free_bytes`: refuse with SpoolFull (452 4.3.1) when the file system would keep less than
    this after the write. Listeners added with `add_listener` (the queue manager's `wake`) are called
    on the event loop after each commit, so in-process mail is picked up without waiting for a scan; a
    Spool without listeners (an acceptor process, the portal, the CLI) pokes the manager's wake-up FIFO
    instead (spool/wakeup.py).
    """

    def __init__(self, root: Path | str, *, min_free_bytes: int = 100 * 1024 * 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.layout = SpoolLayout(root).ensure()
        self.min_free_bytes = min_free_bytes
        self._clock = clock
        self._listeners: list[Callable[[str], None]] = []
        self.incoming_sync = GroupSync(self.layout.state_dir(QueueState.INCOMING))

    @staticmethod
    def from_settings(settings: Settings) -> Spool:
        return Spool(settings.path(settings.spool.dir), min_free_bytes=settings.spool.min_free_bytes)

    @staticmethod
    def for_system_mail(settings: Settings) -> Spool:
        """Where mail the system writes itself (digests, notices, releases, acknowledgements) is committed so
        that something delivers it: on the internal host of a split, submission's outbox, whose queue manager
        relays through the gateway (the main spool has no queue manager there); else the main spool."""
        if settings.server.role == "internal":
            return Spool(settings.path(settings.submission.spool_dir), min_free_bytes=settings.spool.min_free_bytes)
        return Spool.from_settings(settings)

    @property
    def root(self) -> Path:
        return self.layout.root

    def add_listener(self, fn: Callable[[str], None]) -> None:
        self._listeners.append(fn)

    async def commit(
        self,
        envelope: Envelope,
        message: bytes,
        *,
        client: str,
        verdict: Verdict | None = None,
        hops: int = 0,
    ) -> str:
        """Write the message and its record into incoming/ and make both durable; return the queue id.
        The Junk decision is `verdict.folder`.

        Raises SpoolFull when free space is short or the write fails (disk full, I/O error): the
        caller answers 4xx and the client retries. Nothing is half-committed in either case."""
        queue_id = new_queue_id()
        record = QueueRecord.new(queue_id, envelope, arrival=self._clock(), client=client, size=len(message),
                                 verdict=verdict, hops=hops)
        await run_blocking(self._write, record, message)
        log.info("queued id=%s from=<%s> nrcpt=%d size=%d client=%s", queue_id, record.sender,
                 len(record.recipients), len(message), client)
        for fn in self._listeners:
            try:
                fn(queue_id)
            except Exception:  # a listener's bug must not turn a committed message into a 4xx
                log.exception("spool listener failed for %s", queue_id)
        if not self._listeners:  # the queue manager runs elsewhere (another process): wake it through its FIFO
            wakeup.poke(self.layout.root)
        return queue_id

    def _write(self, record: QueueRecord, message: bytes) -> None:
        """Write the entry and make its name durable (blocking: one worker thread does both, so the
        loop hands a commit over once)."""
        free = self.layout.free_bytes()
        if free - len(message) < self.min_free_bytes:
            raise SpoolFull(f"spool has {free} bytes free, keeps at least {self.min_free_bytes}")
        try:
            self.layout.create(record, message)
        except OSError as exc:
            raise SpoolFull(f"spool write failed: {exc}") from exc
        try:
            self.incoming_sync.sync()
        except OSError as exc:
            # The name may not be durable: we cannot promise delivery, so the client must retry. Take the
            # entry back so that the retry does not make a second copy (if the manager claimed it first,
            # it is delivered and the retry is a duplicate: never a loss).
            with contextlib.suppress(OSError):
                self.layout.remove(record.queue_id, QueueState.INCOMING)
            raise SpoolFull(f"spool directory fsync failed: {exc}") from exc
