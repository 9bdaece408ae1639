"""The only way into the queue: `Spool.commit` (the SpoolWriter port of core/ports.py).

A 250 is a promise. `commit` returns only once the message and its record are written, fsynced and
renamed into incoming/, and the rename itself is fsynced:

    tmp/<id>/message.eml   write + fsync
    tmp/<id>/record.json   write + fsync
    fsync tmp/<id>/ and tmp/
    rename tmp/<id> -> incoming/<id>, fsync incoming/

A crash at any point before the rename leaves only tmp/ debris (swept later); after it, the entry is
whole. The blocking I/O runs in a worker thread so the event loop keeps serving other sessions.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from mailbastion.config.schema import Settings
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import SpoolFull
from mailbastion.core.verdict import Verdict
from mailbastion.spool.layout import (
    MESSAGE_FILE,
    RECORD_FILE,
    QueueState,
    SpoolLayout,
    fsync_dir,
    new_queue_id,
    write_durably,
)
from mailbastion.spool.record import QueueRecord

log = logging.getLogger("mailbastion.spool")


class Spool:
    """Commits messages durably into `<root>/incoming/`.

    `min_free_bytes`: refuse with SpoolFull (452 4.3.1) when the file system would keep less than
    this after the write. Listeners added with `add_listener` (the queue manager's `wake`) are called
    on the event loop after each commit, so in-process mail is picked up without waiting for a scan.
    """

    def __init__(self, root: Path | str, *, min_free_bytes: int = 100 * 1024 * 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.layout = SpoolLayout(root).ensure()
        self.min_free_bytes = min_free_bytes
        self._clock = clock
        self._listeners: list[Callable[[str], None]] = []

    @staticmethod
    def from_settings(settings: Settings) -> Spool:
        return Spool(settings.path(settings.spool.dir), min_free_bytes=settings.spool.min_free_bytes)

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
        junk: bool = False,
        hops: int = 0,
    ) -> str:
        """Write, fsync and rename the message and its record into incoming/; return the queue id.

        Raises SpoolFull when free space is short or the write fails (disk full, I/O error): the
        caller answers 4xx and the client retries. Nothing is half-committed in either case.
        """
        queue_id = new_queue_id()
        record = QueueRecord.new(queue_id, envelope, arrival=self._clock(), client=client, size=len(message),
                                 verdict=verdict, junk=junk, hops=hops)
        await asyncio.to_thread(self._write, record, message)
        log.info("queued id=%s from=<%s> nrcpt=%d size=%d client=%s", queue_id, record.sender,
                 len(record.recipients), len(message), client)
        for fn in self._listeners:
            try:
                fn(queue_id)
            except Exception:  # a listener's bug must not turn a committed message into a 4xx
                log.exception("spool listener failed for %s", queue_id)
        return queue_id

    def _write(self, record: QueueRecord, message: bytes) -> None:
        layout = self.layout
        free = layout.free_bytes()
        if free - len(message) < self.min_free_bytes:
            raise SpoolFull(f"spool has {free} bytes free, keeps at least {self.min_free_bytes}")
        work = layout.tmp / record.queue_id
        try:
            work.mkdir(mode=0o700)
            write_durably(work / MESSAGE_FILE, message)
            write_durably(work / RECORD_FILE, record.to_json())
            fsync_dir(work)
            work.rename(layout.entry(QueueState.INCOMING, record.queue_id))
            fsync_dir(layout.state_dir(QueueState.INCOMING))
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise SpoolFull(f"spool write failed: {exc}") from exc
