"""Rate limits: at most N events per key in a sliding window (in memory; Redis when gateways share).

    limiter = RateLimiter()
    limiter.hit("client:192.0.2.1", limit=100, window=3600.0)  -> True when still within the limit

Contract: `hit` records the event only when it is allowed, so a client that is refused does not dig
itself deeper by retrying. Memory is bounded: at most `max_keys` keys, the least recently used dropped
first. The clock is injectable for tests. Not shared between processes: with several gateway workers
each enforces its own share (a Redis store is the planned shared backend, behind the same `hit`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


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
