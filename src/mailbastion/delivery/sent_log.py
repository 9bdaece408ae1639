"""What we handed to remote servers, remembered for a few days so that a bounce can be matched to it.

    log = SentLog(settings.path("sent-log.db"), keep_days=7)
    log.record(queue_id="4F2A...", message_id="<abc@example.org>", envid="e1", sender="a@example.org",
               recipients=["b@example.net"], remote="mx.example.net")
    log.find(message_ids=["<abc@example.org>"], envid=None)   -> [SentEntry(...)]

A remote server may accept a message (250) and bounce it later; its DSN names our message by the
Original-Envelope-Id the sender gave (RFC 3464 §2.2.1) and returns our headers (Message-ID). The queue
entry is gone by then, so this table is what connects the two (`delivery/bounce_match.py`). One row per
delivered message; rows older than `keep_days` are pruned as new ones are written. SQLite in WAL mode
without an fsync per write, on one connection kept open (closing the last connection checkpoints the WAL
and fsyncs); the file is created 0600 (it lists who wrote to whom).

The delivery agent calls `add` (memory only: nothing blocks the event loop) and `flush` from a worker
thread a moment later, so that many deliveries share one transaction. A crash may forget the rows not
flushed yet, and a power cut the last few written: only bounce matching depends on them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailbastion.private_files import create_private_file

__all__ = ["SentEntry", "SentLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    at REAL NOT NULL, queue_id TEXT NOT NULL, message_id TEXT NOT NULL, envid TEXT NOT NULL,
    sender TEXT NOT NULL, recipient TEXT NOT NULL, remote TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_message_id ON sent (message_id);
CREATE INDEX IF NOT EXISTS sent_envid ON sent (envid);
CREATE INDEX IF NOT EXISTS sent_at ON sent (at);
"""
_PRUNE_EVERY = 1000  # writes between prunes


@dataclass(frozen=True, slots=True)
class SentEntry:
    at: float
    queue_id: str
    message_id: str
    envid: str
    sender: str
    recipient: str
    remote: str


class SentLog:
    """Thread-safe: one connection, used under a lock (`add` from the event loop, `flush` from a thread)."""

    def __init__(self, path: Path, *, keep_days: int = 7, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.keep_seconds = keep_days * 86400
        self.clock = clock
        self._lock = threading.Lock()
        self._writes = 0
        self._pending: list[tuple[float, str, str, str, str, str, str]] = []
        create_private_file(path)
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._conn:
            self._conn.executescript(_SCHEMA)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, *, queue_id: str, message_id: str, envid: str | None, sender: str,
            recipients: Sequence[str], remote: str) -> None:
        """Remember a delivered message (in memory until the next `flush`)."""
        now = self.clock()
        rows = [(now, queue_id, message_id, envid or "", sender, r, remote) for r in recipients]
        with self._lock:
            self._pending += rows

    def flush(self) -> int:
        """Write what `add` gathered, in one transaction (blocking: call it from a thread). Returns the rows."""
        with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return 0
            with self._conn:
                self._conn.executemany("INSERT INTO sent VALUES (?,?,?,?,?,?,?)", rows)
                self._writes += 1
                if self._writes % _PRUNE_EVERY == 1:
                    self._conn.execute("DELETE FROM sent WHERE at < ?", (self.clock() - self.keep_seconds,))
        return len(rows)

    def record(self, *, queue_id: str, message_id: str, envid: str | None, sender: str,
               recipients: Sequence[str], remote: str) -> None:
        """`add` and `flush` at once (blocking)."""
        self.add(queue_id=queue_id, message_id=message_id, envid=envid, sender=sender, recipients=recipients,
                 remote=remote)
        self.flush()

    def find(self, *, message_ids: Sequence[str] = (), envid: str | None = None) -> list[SentEntry]:
        """Rows of the delivered messages with one of these Message-IDs or this ENVID, newest first
        (blocking: what was added is flushed first)."""
        self.flush()
        clauses, args = [], []
        ids = [m for m in message_ids if m]
        if ids:
            clauses.append(f"message_id IN ({','.join('?' * len(ids))})")
            args += ids
        if envid:
            clauses.append("envid = ?")
            args.append(envid)
        if not clauses:
            return []
        with self._lock:
            rows = self._conn.execute(
                f"SELECT at, queue_id, message_id, envid, sender, recipient, remote FROM sent "
                f"WHERE at >= ? AND ({' OR '.join(clauses)}) ORDER BY at DESC LIMIT 100",
                (self.clock() - self.keep_seconds, *args)).fetchall()
        return [SentEntry(*r) for r in rows]

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._conn.close()
