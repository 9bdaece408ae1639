"""Failed sign-ins per client address, in memory: a client over the limit is refused (429) until its
oldest failure in the window ages out. Per-account lockout lives in the directory (`PortalStore`), so it
holds across processes and restarts; this one protects against one address guessing many accounts.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["ClientThrottle"]


class ClientThrottle:
    def __init__(self, max_failures: int = 20, window: dt.timedelta = dt.timedelta(minutes=15), *,
                 monotonic: Callable[[], float] = time.monotonic, max_clients: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window.total_seconds()
        self._monotonic = monotonic
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self._failures.get(client)
        if q is None:
            return deque()
        while q and now - q[0] > self.window:
            q.popleft()
        if not q:
            del self._failures[client]
        return q

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, self._monotonic())) >= self.max_failures

    def failed(self, client: str) -> None:
        now = self._monotonic()
        with self._lock:
            if len(self._failures) >= self._max_clients:  # bounded memory: forget the quietest first
                for key in [k for k, q in self._failures.items() if now - q[-1] > self.window] or list(self._failures)[:1000]:
                    self._failures.pop(key, None)
            self._failures.setdefault(client, deque()).append(now)
