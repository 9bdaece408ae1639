"""Scan results cached by content digest: a bounded LRU with a time to live.

The same attachment sent to many recipients, or a message retried after a 451, is scanned once.
Keys name the engine and its signature generation, so new signatures never reuse an old answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["ScanCache"]


class ScanCache:
    def __init__(self, max_entries: int = 10000, ttl: float = 3600.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        item = self._data.get(key)
        if item is None or (self.ttl and time.monotonic() - item[0] > self.ttl):
            if item is not None:
                del self._data[key]
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: Hashable, value: Any) -> None:
        if self.max_entries <= 0:
            return
        self._data[key] = (time.monotonic(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
