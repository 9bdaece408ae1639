"""Administrator operations on the queue (postqueue/postsuper): list, show, retry, delete, hold, release.

These work on the state directories only, so they are safe while a queue manager runs in another
process: each change is one atomic rename (or unlink), and the manager notices at its next scan. Unlike
the manager's own moves, an administrator's change is fsynced: a power loss must not undo a hold. An entry in active/ is
being delivered right now and is left alone ("busy"); the operation can be repeated a moment later.

    retry    deferred/ or hold/  -> incoming/   (every pending recipient is tried at once)
    flush    every deferred/ entry -> incoming/
    hold     incoming/ or deferred/ -> hold/    (never delivered until released)
    release  hold/ -> incoming/
    delete   any state but active/  -> gone
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailbastion.durable import fsync_dir
from mailbastion.spool import queue_file, wakeup
from mailbastion.spool.layout import QueueState, SpoolLayout, is_queue_id
from mailbastion.spool.record import QueueRecord, RecordError


class QueueControlError(Exception):
    """An operation that cannot be done; the message says why, for the command line."""


class UnknownQueueId(QueueControlError):
    pass


class QueueEntryBusy(QueueControlError):
    pass


@dataclass(frozen=True, slots=True)
class QueueEntry:
    queue_id: str
    state: QueueState
    size: int  # message bytes on disk
    record: QueueRecord | None  # None when the record cannot be read (corrupt)
    error: str = ""


class QueueControl:
    def __init__(self, root: Path | str) -> None:
        self.layout = SpoolLayout(root)

    def entries(self, states: tuple[QueueState, ...] = tuple(QueueState)) -> Iterator[QueueEntry]:
        """Every entry in the given states, state by state, oldest first."""
        for state in states:
            for qid in self.layout.ids(state):
                with contextlib.suppress(FileNotFoundError):  # moved while we looked
                    yield self._entry(state, qid)

    def _entry(self, state: QueueState, qid: str) -> QueueEntry:
        """Raises FileNotFoundError when the entry left `state` meanwhile."""
        path = self.layout.path(state, qid)
        try:
            record = queue_file.read_record(path)
        except (RecordError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            try:
                size = queue_file.message_size(path)
            except RecordError:
                size = path.stat().st_size
            return QueueEntry(qid, state, size, None, str(exc))
        return QueueEntry(qid, state, record.size, record)

    def get(self, queue_id: str) -> QueueEntry:
        state = self._locate(queue_id)
        try:
            return self._entry(state, queue_id)
        except FileNotFoundError:
            raise UnknownQueueId(f"{queue_id}: no longer in the queue") from None

    def headers(self, queue_id: str) -> bytes:
        """The header block of the queued message (for `queue show`)."""
        state = self._locate(queue_id)
        try:
            return queue_file.read_headers(self.layout.path(state, queue_id))
        except FileNotFoundError:
            raise UnknownQueueId(f"{queue_id}: no longer in the queue") from None
        except RecordError as exc:
            raise QueueControlError(f"{queue_id}: {exc}") from None

    def retry(self, queue_id: str) -> QueueState:
        return self._move(queue_id, (QueueState.DEFERRED, QueueState.HOLD, QueueState.INCOMING),
                          QueueState.INCOMING)

    def flush(self) -> list[str]:
        """Retry every deferred message now (postqueue -f). Returns the ids moved."""
        moved = []
        for qid in self.layout.ids(QueueState.DEFERRED):
            with contextlib.suppress(FileNotFoundError):  # claimed by the manager meanwhile
                self.layout.move(qid, QueueState.DEFERRED, QueueState.INCOMING)
                moved.append(qid)
        if moved:
            self._sync(QueueState.DEFERRED, QueueState.INCOMING)
        return moved

    def hold(self, queue_id: str) -> QueueState:
        return self._move(queue_id, (QueueState.INCOMING, QueueState.DEFERRED, QueueState.HOLD), QueueState.HOLD)

    def release(self, queue_id: str) -> QueueState:
        return self._move(queue_id, (QueueState.HOLD,), QueueState.INCOMING)

    def delete(self, queue_id: str) -> QueueState:
        """Remove a message from the queue for good. Returns the state it was in."""
        state = self._locate(queue_id)
        if state is QueueState.ACTIVE:
            raise QueueEntryBusy(f"{queue_id}: being delivered right now; try again in a moment")
        try:
            self.layout.remove(queue_id, state)
        except FileNotFoundError:
            raise QueueEntryBusy(f"{queue_id}: moved while deleting; try again") from None
        self._sync(state)
        return state

    def _locate(self, queue_id: str) -> QueueState:
        if not is_queue_id(queue_id):
            raise UnknownQueueId(f"{queue_id!r}: not a queue id")
        state = self.layout.find(queue_id)
        if state is None:
            raise UnknownQueueId(f"{queue_id}: no such message in the queue")
        return state

    def _move(self, queue_id: str, sources: tuple[QueueState, ...], dst: QueueState) -> QueueState:
        state = self._locate(queue_id)
        if state is QueueState.ACTIVE:
            raise QueueEntryBusy(f"{queue_id}: being delivered right now; try again in a moment")
        if state not in sources:
            raise QueueControlError(f"{queue_id}: is in {state.value}/, cannot move it to {dst.value}/")
        if state is not dst:
            try:
                self.layout.move(queue_id, state, dst)
            except FileNotFoundError:
                raise QueueEntryBusy(f"{queue_id}: moved meanwhile; try again") from None
            self._sync(state, dst)
        return state

    def _sync(self, *states: QueueState) -> None:
        for state in states:
            fsync_dir(self.layout.state_dir(state))
        if QueueState.INCOMING in states:  # the queue manager takes it now, not at its next full scan
            wakeup.poke(self.layout.root)
