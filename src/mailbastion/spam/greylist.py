"""Greylisting (RFC 6647): refuse a new (client network, sender, recipient) triplet once with 451, accept
it when it comes back after `delay` and within `retry_window`; then remember it for `pass_ttl`.

    grey = Greylist(MemoryGreylistStore(), delay=300, retry_window=4 * 3600, pass_ttl=36 * 86400)
    grey.check("192.0.2.1", "a@example.org", "b@example.com") -> GreyOutcome.DEFERRED / PASSED / KNOWN

The client address is reduced to its /24 (IPv4) or /64 (IPv6): large senders retry from a neighbour.
Stores: `MemoryGreylistStore` (one process) and `SqliteGreylistStore` (shared by the workers of one host;
Redis for several gateways later, behind the same two methods).
"""

from __future__ import annotations

import ipaddress
import sqlite3
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Protocol


class GreyOutcome(Enum):
    DEFERRED = "deferred"  # first sight, or retried too early / too late: 451
    PASSED = "passed"  # retried in the window: accepted, and remembered
    KNOWN = "known"  # passed before, within pass_ttl


class GreylistStore(Protocol):
    def get(self, key: str) -> tuple[float, float | None] | None:
        """(first_seen, passed_at) for key, or None."""
        ...

    def put(self, key: str, first_seen: float, passed_at: float | None) -> None: ...


class MemoryGreylistStore:
    def __init__(self, max_keys: int = 200_000) -> None:
        self._data: dict[str, tuple[float, float | None]] = {}
        self._max = max_keys
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[float, float | None] | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, first_seen: float, passed_at: float | None) -> None:
        with self._lock:
            if len(self._data) >= self._max and key not in self._data:
                self._data.pop(next(iter(self._data)))  # oldest inserted first
            self._data[key] = (first_seen, passed_at)


class SqliteGreylistStore:
    """One small table; safe for several processes (SQLite locking, WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS greylist (key TEXT PRIMARY KEY, first_seen REAL NOT NULL,"
                         " passed_at REAL)")
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[float, float | None] | None:
        with self._lock:
            row = self._db.execute("SELECT first_seen, passed_at FROM greylist WHERE key = ?", (key,)).fetchone()
        return None if row is None else (float(row[0]), None if row[1] is None else float(row[1]))

    def put(self, key: str, first_seen: float, passed_at: float | None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO greylist (key, first_seen, passed_at) VALUES (?, ?, ?)",
                             (key, first_seen, passed_at))

    def expire(self, before: float) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM greylist WHERE coalesce(passed_at, first_seen) < ?", (before,))
        return cur.rowcount

    def close(self) -> None:
        self._db.close()


def client_network(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class Greylist:
    def __init__(self, store: GreylistStore, *, delay: float = 300.0, retry_window: float = 4 * 3600.0,
                 pass_ttl: float = 36 * 86400.0, clock: Callable[[], float] = time.time) -> None:
        self.store, self.delay, self.retry_window, self.pass_ttl = store, delay, retry_window, pass_ttl
        self._clock = clock

    def check(self, client_ip: str, sender: str, recipient: str) -> GreyOutcome:
        now = self._clock()
        key = f"{client_network(client_ip)}|{sender.lower()}|{recipient.lower()}"
        seen = self.store.get(key)
        if seen is not None:
            first, passed = seen
            if passed is not None and now - passed < self.pass_ttl:
                self.store.put(key, first, now)  # refreshed on every use
                return GreyOutcome.KNOWN
            if passed is None and self.delay <= now - first <= self.delay + self.retry_window:
                self.store.put(key, first, now)
                return GreyOutcome.PASSED
            if passed is None and now - first < self.delay:
                return GreyOutcome.DEFERRED  # too early: the clock keeps running from first sight
        self.store.put(key, now, None)
        return GreyOutcome.DEFERRED
