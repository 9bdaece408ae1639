"""The spool on disk: one directory per queue state, one file per queued message (Postfix).

    <root>/tmp/<id>           being written; never seen by the queue manager; emptied at start-up
    <root>/incoming/<id>      committed, not yet looked at
    <root>/active/<id>        claimed by the queue manager, being delivered
    <root>/deferred/<id>      waiting for its next retry time
    <root>/hold/<id>          held by the administrator; never delivered until released
    <root>/corrupt/<id>       unreadable record or message; kept for a human to look at

Each file holds the record and the message (queue_file.py). An entry changes state by one `rename(2)`,
which is atomic on one file system: a message is in exactly one state at any instant, and a crash
leaves it whole in one of them. What is fsynced, and why the rest need not be:

  - commit: the file's data (here) and its name in incoming/ (the writer's group fsync) before 250;
  - a record rewrite: the new file's data before it is renamed over the old one (old or new survives);
  - state moves and removal: not fsynced. A power loss can only undo them, which leaves the entry in
    an earlier state (active/ is put back into incoming/ at start-up) and delivers it again; the MDA
    answers a delivery it already made with 250 without writing again (exactly-once by queue id).

Every blocking call here is synchronous on purpose; async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from enum import StrEnum
from pathlib import Path

from mailbastion.durable import write_fd
from mailbastion.spool import queue_file
from mailbastion.spool.record import QueueRecord

# Hex time in microseconds (sorts by arrival) + 24 random bits: unique across processes and hosts.
_QUEUE_ID = re.compile(r"^[0-9A-F]{13,32}$")


class QueueState(StrEnum):
    INCOMING = "incoming"
    ACTIVE = "active"
    DEFERRED = "deferred"
    HOLD = "hold"
    CORRUPT = "corrupt"


def new_queue_id() -> str:
    return f"{time.time_ns() // 1000:013X}{secrets.token_hex(3).upper()}"


def is_queue_id(text: str) -> bool:
    """True for a well-formed queue id; the only names ever joined to a spool path."""
    return bool(_QUEUE_ID.match(text))


class SpoolLayout:
    """Paths and atomic moves inside one spool root. Creates nothing until `ensure()`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        # The hot paths (a create, a claim, a read, a removal per message) join strings: a pathlib join
        # costs microseconds each, several times per message in the acceptor and the queue manager.
        self._tmp = str(self.tmp)
        self._dirs = {state: os.path.join(self.root, state.value) for state in QueueState}

    def ensure(self) -> SpoolLayout:
        """Create the root, tmp/ and every state directory (mode 0700: mail is private)."""
        for d in (self.root, self.tmp, *(self.state_dir(s) for s in QueueState)):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self

    def state_dir(self, state: QueueState) -> Path:
        return self.root / state.value

    def path(self, state: QueueState, queue_id: str) -> Path:
        return Path(self._path(state, queue_id))

    def _path(self, state: QueueState, queue_id: str) -> str:
        if not is_queue_id(queue_id):
            raise ValueError(f"not a queue id: {queue_id!r}")
        return f"{self._dirs[state]}/{queue_id}"

    def ids(self, state: QueueState) -> list[str]:
        """Queue ids in one state, oldest first (ids sort by arrival)."""
        try:
            names = os.listdir(self.state_dir(state))
        except FileNotFoundError:
            return []
        return sorted(n for n in names if is_queue_id(n))

    def find(self, queue_id: str) -> QueueState | None:
        """The state a message is in now, or None. A racing move may make the answer stale at once."""
        for state in QueueState:
            if self.path(state, queue_id).exists():
                return state
        return None

    # -- writing -------------------------------------------------------------------------------
    def _write_tmp(self, name: str, record: QueueRecord, message: bytes) -> str:
        """A whole queue file in tmp/, its data fsynced."""
        path = f"{self._tmp}/{name}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_fd(fd, queue_file.encode(record, message))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
        os.close(fd)
        return path

    def create(self, record: QueueRecord, message: bytes) -> None:
        """Write a new entry into incoming/: data fsynced, then renamed in. The caller makes the new name
        durable (fsync of incoming/, shared by concurrent writers). On OSError nothing is left behind."""
        work = self._write_tmp(record.queue_id, record, message)
        try:
            os.rename(work, self._path(QueueState.INCOMING, record.queue_id))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(work)
            raise

    def rewrite(self, state: QueueState, record: QueueRecord, message: bytes) -> None:
        """Replace an entry's file with one holding `record`: written and fsynced aside, then renamed over
        the old one, so a crash leaves the old or the new file, whole."""
        work = self._write_tmp(f"{record.queue_id}.{secrets.token_hex(4)}", record, message)
        try:
            os.rename(work, self._path(state, record.queue_id))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(work)
            raise

    def move(self, queue_id: str, src: QueueState, dst: QueueState) -> None:
        """Atomically move an entry between states. Raises FileNotFoundError if it is not in `src`
        (someone else moved it first: the loser of a race simply skips it). Not fsynced (see above)."""
        os.rename(self._path(src, queue_id), self._path(dst, queue_id))

    def remove(self, queue_id: str, src: QueueState) -> None:
        """Delete an entry: one unlink. Raises FileNotFoundError if it is not in `src`."""
        os.unlink(self._path(src, queue_id))

    # -- reading -------------------------------------------------------------------------------
    def load(self, state: QueueState, queue_id: str) -> QueueRecord:
        """An entry's record. Raises FileNotFoundError, or RecordError when it is malformed."""
        return queue_file.read_record(self.path(state, queue_id))

    def read(self, state: QueueState, queue_id: str) -> tuple[QueueRecord, bytes]:
        """An entry's record and message. Raises FileNotFoundError, or RecordError when malformed."""
        return queue_file.read(self._path(state, queue_id))

    def message(self, state: QueueState, queue_id: str) -> bytes:
        return self.read(state, queue_id)[1]

    # -- housekeeping --------------------------------------------------------------------------
    def clear_tmp(self) -> int:
        """Remove everything in tmp/: writes that never committed (a crash before the rename). Only at
        start-up, before any writer of this spool runs (acceptor processes included)."""
        count = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.tmp):
                path = self.tmp / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                count += 1
        return count

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize
