"""The spool on disk: one directory per queue state, one directory per queued message (Postfix).

    <root>/tmp/<id>/          being written; never seen by the queue manager
    <root>/incoming/<id>/     committed, not yet looked at
    <root>/active/<id>/       claimed by the queue manager, being delivered
    <root>/deferred/<id>/     waiting for its next retry time
    <root>/hold/<id>/         held by the administrator; never delivered until released
    <root>/corrupt/<id>/      unreadable record or message; kept for a human to look at

Each entry holds `message.eml` (the bytes exactly as received) and `record.json` (see record.py).
An entry changes state by one `rename(2)` of its directory, which is atomic on one file system: a
message is in exactly one state at any instant, and a crash leaves it whole in one of them.
Every blocking call here is synchronous on purpose; async callers run them in a thread.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from enum import StrEnum
from pathlib import Path

from mailbastion.durable import fsync_dir, write_durably
from mailbastion.spool.record import QueueRecord

MESSAGE_FILE = "message.eml"
RECORD_FILE = "record.json"

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

    def ensure(self) -> SpoolLayout:
        """Create the root, tmp/ and every state directory (mode 0700: mail is private)."""
        for d in (self.root, self.tmp, *(self.state_dir(s) for s in QueueState)):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self

    def state_dir(self, state: QueueState) -> Path:
        return self.root / state.value

    def entry(self, state: QueueState, queue_id: str) -> Path:
        if not is_queue_id(queue_id):
            raise ValueError(f"not a queue id: {queue_id!r}")
        return self.state_dir(state) / queue_id

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
            if self.entry(state, queue_id).is_dir():
                return state
        return None

    def move(self, queue_id: str, src: QueueState, dst: QueueState) -> None:
        """Atomically move an entry between states. Raises FileNotFoundError if it is not in `src`
        (someone else moved it first: the loser of a race simply skips it)."""
        os.rename(self.entry(src, queue_id), self.entry(dst, queue_id))
        fsync_dir(self.state_dir(dst))
        fsync_dir(self.state_dir(src))

    def load(self, state: QueueState, queue_id: str) -> QueueRecord:
        """Read an entry's record. Raises FileNotFoundError, or RecordError when it is malformed."""
        return QueueRecord.from_json((self.entry(state, queue_id) / RECORD_FILE).read_bytes())

    def save(self, state: QueueState, record: QueueRecord) -> None:
        """Replace an entry's record durably: write a sibling, fsync, rename over, fsync the entry."""
        entry = self.entry(state, record.queue_id)
        scratch = entry / f".{RECORD_FILE}.new"
        write_durably(scratch, record.to_json())
        os.rename(scratch, entry / RECORD_FILE)
        fsync_dir(entry)

    def message_path(self, state: QueueState, queue_id: str) -> Path:
        return self.entry(state, queue_id) / MESSAGE_FILE

    def remove(self, queue_id: str, src: QueueState) -> None:
        """Delete an entry: one rename out of its state (atomic), then the files."""
        grave = self.tmp / f"{queue_id}.removed.{secrets.token_hex(4)}"
        os.rename(self.entry(src, queue_id), grave)
        fsync_dir(self.state_dir(src))
        shutil.rmtree(grave, ignore_errors=True)

    def sweep_tmp(self, *, older_than: float = 3600.0) -> int:
        """Remove leftovers of writes that never committed (a crash before the rename). Only entries
        older than `older_than` seconds go, so a writer in another process is never disturbed."""
        count = 0
        limit = time.time() - older_than
        for name in os.listdir(self.tmp):
            path = self.tmp / name
            try:
                if path.lstat().st_mtime > limit:
                    continue
            except FileNotFoundError:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            count += 1
        return count

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize
