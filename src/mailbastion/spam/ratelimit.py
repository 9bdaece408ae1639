"""Rate limits: at most N events per key in a sliding window (in memory; Redis when gateways share).

    limiter = RateLimiter()
    limiter.hit("client:192.0.2.1", limit=100, window=3600.0)  -> True when still within the limit

Contract: `hit` records the event only when it is allowed, so a client that is refused does not dig
itself deeper by retrying. Memory is bounded: at most `max_keys` keys, the least recently used dropped
first. The clock is injectable for tests. `RateLimiter` is per process; `SqliteRateLimiter` is shared by
the SMTP workers of one host (server.workers > 1); a Redis store for several gateways is the planned
third backend, behind the same `hit`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path


class RateLimiter:
    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window: float) -> bool:
        """Count one event for `key` if fewer than `limit` happened in the last `window` seconds."""
        now = self._clock()
        with self._lock:
            q = self._events.get(key)
            if q is None:
                q = self._events[key] = deque()
            else:
                self._events.move_to_end(key)
            while q and q[0] <= now - window:
                q.popleft()
            if len(q) >= limit:
                return False
            q.append(now)
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
            return True

    def count(self, key: str, *, window: float) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for t in self._events.get(key, ()) if t > now - window)


class SqliteRateLimiter:
    """The same contract as RateLimiter, in one SQLite table (WAL) shared by the processes of one host."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, vacuum_every: int = 1000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # counters, not mail: losing the last second is fine
        self._db.execute("CREATE TABLE IF NOT EXISTS rate_events (key TEXT NOT NULL, at REAL NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS rate_events_key ON rate_events (key, at)")
        self._clock = clock
        self._lock = threading.Lock()
        self._hits = 0
        self._vacuum_every = vacuum_every
        self._longest_window = 0.0

    def hit(self, key: str, *, limit: int, window: float) -> bool:
        now = self._clock()
        with self._lock:
            self._longest_window = max(self._longest_window, window)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (n,) = self._db.execute("SELECT count(*) FROM rate_events WHERE key = ? AND at > ?",
                                        (key, now - window)).fetchone()
                allowed = n < limit
                if allowed:
                    self._db.execute("INSERT INTO rate_events (key, at) VALUES (?, ?)", (key, now))
                self._hits += 1
                if self._hits % self._vacuum_every == 0:
                    self._db.execute("DELETE FROM rate_events WHERE at <= ?", (now - self._longest_window,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return bool(allowed)

    def close(self) -> None:
        self._db.close()

