"""A search index over the quarantine's files, for pages that must stay fast at 100,000 held messages.

    index = QuarantineIndex(store)                 # <quarantine root>/index.sqlite3, 0600
    page = index.search("invoice", limit=50)       # newest first; page.next_before -> the next page
    page = index.search(recipient="bob@example.org", before=page.next_before)

The files stay the truth (`store.py`; the gateway writes them and knows nothing of this index): the index is
a cache that `sync()` brings up to date from the `msg/` folder, cheaply. A sync that finds the folder's
modification time unchanged does nothing (one `stat`); otherwise it lists the folder once, reads the
records of new entries and forgets removed ones. A folder changed within the last second is listed again at
the next sync, because two changes inside one tick of the file system's clock leave one modification time.
Deleting the index file is always safe: the next sync rebuilds it.

Pagination is by keyset (`before` = the last id shown; ids sort by time), so the thousandth page costs what
the first does. Recipients are indexed lower-cased and without their +tag (`recipient_delimiter`), so a
user's page finds mail held for `bob+news@`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbastion.quarantine.store import QuarantineStore

__all__ = ["IndexedEntry", "QuarantineIndex", "QuarantinePage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, received_at TEXT NOT NULL, sender TEXT NOT NULL, recipients TEXT NOT NULL,
    subject TEXT NOT NULL, action TEXT NOT NULL, score REAL NOT NULL, is_malware INTEGER NOT NULL,
    size INTEGER NOT NULL, reasons TEXT NOT NULL, haystack TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entry_rcpt (rcpt TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (rcpt, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_entry_rcpt_id ON entry_rcpt (id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Substring search over 100,000 entries: an FTS5 trigram index (SQLite >= 3.34) finds the few matching ids
# without reading every row; needles under 3 characters (and SQLite builds without trigram) scan with instr().
_FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(id UNINDEXED, haystack, tokenize='trigram')"
_COLUMNS = "id, received_at, sender, recipients, subject, action, score, is_malware, size, reasons"
_SETTLE_NS = 1_000_000_000  # a folder changed this recently is listed again next time


@dataclass(frozen=True, slots=True)
class IndexedEntry:
    id: str
    received_at: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    action: str
    score: float
    is_malware: bool
    size: int
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QuarantinePage:
    entries: tuple[IndexedEntry, ...]
    next_before: str | None  # pass as `before` for the next (older) page; None on the last page


def mailbox_key(address: str, delimiter: str = "+") -> str:
    """`Bob+News@Example.org` -> `bob@example.org`: how a recipient is indexed and looked up."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return address.strip().lower()
    if delimiter and delimiter in local:
        local = local.split(delimiter, 1)[0]
    return f"{local.lower()}@{domain.lower()}"


class QuarantineIndex:
    def __init__(self, store: QuarantineStore, path: Path | str | None = None, *,
                 recipient_delimiter: str = "+") -> None:
        self.store = store
        self.path = Path(path) if path is not None else store.root / "index.sqlite3"
        self.delimiter = recipient_delimiter
        self._lock = threading.Lock()
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)  # held mail's metadata: the service only
            os.close(fd)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last writes costs a re-list
        self._db.executescript(_SCHEMA)
        try:
            self._db.execute(_FTS)
            self.fts = True
        except sqlite3.OperationalError:  # no FTS5 or no trigram tokenizer in this SQLite
            self.fts = False
        if self.fts and self._db.execute("SELECT count(*) FROM entries_fts").fetchone()[0] == 0:
            self._db.execute("INSERT INTO entries_fts (id, haystack) SELECT id, haystack FROM entries")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- keeping up with the files

    def sync(self) -> int:
        """Bring the index up to date with `msg/`; return how many entries were added or removed."""
        msg = self.store.msg
        with self._lock:
            try:
                mtime = msg.stat().st_mtime_ns
            except FileNotFoundError:
                return 0
            row = self._db.execute("SELECT value FROM meta WHERE key = 'msg_mtime'").fetchone()
            if row is not None and row[0] == str(mtime):
                return 0
            on_disk = {e.name[:-5] for e in os.scandir(msg) if e.name.endswith(".json")}
            indexed = {r[0] for r in self._db.execute("SELECT id FROM entries")}
            added = self._read(sorted(on_disk - indexed))
            gone = sorted(indexed - on_disk)
            self._db.execute("BEGIN")
            try:
                self._insert(added)
                self._db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in gone])
                self._db.executemany("DELETE FROM entry_rcpt WHERE id = ?", [(i,) for i in gone])
                if self.fts:
                    self._db.executemany("DELETE FROM entries_fts WHERE id = ?", [(i,) for i in gone])
                settled = time.time_ns() - mtime > _SETTLE_NS
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('msg_mtime', ?)",
                                 (str(mtime) if settled else "",))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return len(added) + len(gone)

    def _read(self, ids: Iterable[str]) -> list[IndexedEntry]:
        out = []
        for qid in ids:
            try:
                e = self.store.get(qid)
            except (KeyError, OSError, ValueError):
                continue  # removed meanwhile, or not an entry (the store skips those too)
            out.append(IndexedEntry(e.id, e.received_at, e.sender, e.recipients, e.subject, e.action, e.score,
                                    e.is_malware, e.size, e.reasons))
        return out

    def _insert(self, entries: list[IndexedEntry]) -> None:
        self._db.executemany(
            f"INSERT OR REPLACE INTO entries ({_COLUMNS}, haystack) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(e.id, e.received_at, e.sender, json.dumps(e.recipients), e.subject, e.action, e.score,
              int(e.is_malware), e.size, json.dumps(e.reasons), _haystack(e)) for e in entries])
        if self.fts:
            self._db.executemany("INSERT INTO entries_fts (id, haystack) VALUES (?, ?)",
                                 [(e.id, _haystack(e)) for e in entries])
        self._db.executemany("INSERT OR IGNORE INTO entry_rcpt (rcpt, id) VALUES (?, ?)",
                             [(mailbox_key(r, self.delimiter), e.id) for e in entries for r in e.recipients])

    # ---- reading

    def search(self, text: str = "", *, recipient: str | None = None, malware: bool | None = None,
               before: str | None = None, limit: int = 50) -> QuarantinePage:
        """Newest first: entries whose id, sender, recipients, subject or symbols contain `text` (any
        case), held for `recipient` (a mailbox, +tags ignored), malware or not; older than `before`."""
        where, args = self._where(text, malware, before, self.fts)
        if recipient is not None:
            sql = (f"SELECT {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))} FROM entry_rcpt r "
                   f"JOIN entries e ON e.id = r.id WHERE r.rcpt = ? {''.join(' AND ' + w for w in where)} "
                   "ORDER BY r.id DESC LIMIT ?")
            args = [mailbox_key(recipient, self.delimiter), *args]
        else:
            sql = (f"SELECT {_COLUMNS} FROM entries e {'WHERE ' + ' AND '.join(where) if where else ''} "
                   "ORDER BY e.id DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, [*args, limit + 1]).fetchall()
        entries = tuple(_entry(r) for r in rows[:limit])
        return QuarantinePage(entries, entries[-1].id if len(rows) > limit else None)

    def count(self, text: str = "", *, recipient: str | None = None, malware: bool | None = None) -> int:
        where, args = self._where(text, malware, None, self.fts)
        if recipient is not None:
            sql = ("SELECT count(*) FROM entry_rcpt r JOIN entries e ON e.id = r.id WHERE r.rcpt = ?"
                   + "".join(" AND " + w for w in where))
            args = [mailbox_key(recipient, self.delimiter), *args]
        else:
            sql = "SELECT count(*) FROM entries e" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    def recipients_since(self, received_after: str) -> dict[str, list[IndexedEntry]]:
        """Held entries received after the ISO time `received_after`, by recipient mailbox (the digest)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT r.rcpt, {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))} FROM entries e "
                "JOIN entry_rcpt r ON r.id = e.id WHERE e.received_at > ? ORDER BY r.rcpt, e.id DESC",
                (received_after,)).fetchall()
        out: dict[str, list[IndexedEntry]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(_entry(r[1:]))
        return out

    @staticmethod
    def _where(text: str, malware: bool | None, before: str | None, fts: bool) -> tuple[list[str], list[object]]:
        where: list[str] = []
        args: list[object] = []
        needle = text.strip().lower()
        if needle and fts and len(needle) >= 3:
            where.append("e.id IN (SELECT id FROM entries_fts WHERE entries_fts MATCH ?)")
            args.append('haystack:"' + needle.replace('"', '""') + '"')  # one phrase: a plain substring
        elif needle:
            where.append("instr(e.haystack, ?) > 0")
            args.append(needle)
        if malware is not None:
            where.append("e.is_malware = ?")
            args.append(int(malware))
        if before:
            where.append("e.id < ?")
            args.append(before)
        return where, args


def _haystack(e: IndexedEntry) -> str:
    return " ".join([e.id, e.sender, *e.recipients, e.subject, *e.reasons]).lower()


def _entry(r: Sequence[Any]) -> IndexedEntry:
    return IndexedEntry(str(r[0]), str(r[1]), str(r[2]), tuple(json.loads(str(r[3]))), str(r[4]), str(r[5]),
                        float(r[6]), bool(r[7]), int(r[8]), tuple(json.loads(str(r[9]))))
