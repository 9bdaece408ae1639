"""What we handed to remote servers, remembered for a few days so that a bounce can be matched to it.

    log = SentLog(settings.path("sent-log.db"), keep_days=7)
    log.record(queue_id="4F2A...", message_id="<abc@example.org>", envid="e1", sender="a@example.org",
               recipients=["b@example.net"], remote="mx.example.net")
    log.find(message_ids=["<abc@example.org>"], envid=None)   -> [SentEntry(...)]

A remote server may accept a message (250) and bounce it later; its DSN names our message by the
Original-Envelope-Id the sender gave (RFC 3464 §2.2.1) and returns our headers (Message-ID). The queue
entry is gone by then, so this table is what connects the two (`delivery/bounce_match.py`). One row per
delivered message; rows older than `keep_days` are pruned as new ones are written. SQLite in WAL mode
without an fsync per write (a power cut may forget the last few rows: only log lines depend on them);
the file is created 0600 (it lists who wrote to whom).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    """Thread-safe; each call is one short transaction."""

    def __init__(self, path: Path, *, keep_days: int = 7, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.keep_seconds = keep_days * 86400
        self.clock = clock
        self._lock = threading.Lock()
        self._writes = 0
        create_private_file(path)
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            try:
                with db:
                    yield db
            finally:
                db.close()

    def record(self, *, queue_id: str, message_id: str, envid: str | None, sender: str,
               recipients: Sequence[str], remote: str) -> None:
        now = self.clock()
        with self._db() as db:
            db.executemany("INSERT INTO sent VALUES (?,?,?,?,?,?,?)",
                           [(now, queue_id, message_id, envid or "", sender, r, remote) for r in recipients])
            self._writes += 1
            if self._writes % _PRUNE_EVERY == 1:
                db.execute("DELETE FROM sent WHERE at < ?", (now - self.keep_seconds,))

    def find(self, *, message_ids: Sequence[str] = (), envid: str | None = None) -> list[SentEntry]:
        """Rows of the delivered messages with one of these Message-IDs or this ENVID, newest first."""
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
        with self._db() as db:
            rows = db.execute(f"SELECT at, queue_id, message_id, envid, sender, recipient, remote FROM sent "
                              f"WHERE at >= ? AND ({' OR '.join(clauses)}) ORDER BY at DESC LIMIT 100",
                              (self.clock() - self.keep_seconds, *args)).fetchall()
        return [SentEntry(*r) for r in rows]
