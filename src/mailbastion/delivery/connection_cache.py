"""Postfix's SMTP connection cache and per-destination concurrency, for the outbound SMTP agent.

    cache = SessionCache(idle_seconds=2.0, reuse_seconds=300.0)
    session = cache.take(target.key)          # an idle session to the same address under the same TLS
    ...                                       # requirement, or None
    await cache.put(session)                  # back after a clean transaction (RSET answered), or closed

    limits = DestinationLimits(20)
    async with limits.slot("example.org"):    # at most 20 sessions at once to one destination domain
        ...

A cached session is closed once idle for `idle_seconds` (Postfix smtp_connection_cache_time_limit, 2 s)
or once it has lived `reuse_seconds` (smtp_connection_reuse_time_limit, 300 s), so remote servers do not
see connections lingering. At most `max_idle` sessions are kept at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Hashable

from mailbastion.delivery.smtp_session import SmtpSession

__all__ = ["DestinationLimits", "SessionCache"]


class SessionCache:
    def __init__(self, *, idle_seconds: float = 2.0, reuse_seconds: float = 300.0, max_idle: int = 64) -> None:
        self.idle_seconds = idle_seconds
        self.reuse_seconds = reuse_seconds
        self.max_idle = max_idle
        self._idle: dict[Hashable, list[SmtpSession]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.reused = 0  # sessions handed out again (for logs and tests)

    @property
    def enabled(self) -> bool:
        return self.idle_seconds > 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def take(self, key: Hashable) -> SmtpSession | None:
        """An idle, still open session for `key`, or None."""
        sessions = self._idle.get(key)
        while sessions:
            session = sessions.pop()
            self._cancel_timer(session)
            if not sessions:
                del self._idle[key]
            if session.is_open and time.monotonic() - session.opened < self.reuse_seconds:
                self.reused += 1
                return session
            self._close_later(session)
            sessions = self._idle.get(key)
        return None

    async def put(self, session: SmtpSession) -> None:
        """Keep `session` for the next message to the same place, or close it (cache off or full, too old,
        or it does not answer RSET)."""
        young = time.monotonic() - session.opened < self.reuse_seconds
        if not (self.enabled and young and len(self) < self.max_idle and await session.reset()):
            await session.close()
            return
        key = session.target.key
        self._idle.setdefault(key, []).append(session)
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(self.idle_seconds, self._expire, key, session)

    def _expire(self, key: Hashable, session: SmtpSession) -> None:
        sessions = self._idle.get(key, [])
        if session in sessions:
            sessions.remove(session)
            if not sessions:
                self._idle.pop(key, None)
            self._close_later(session)

    @staticmethod
    def _cancel_timer(session: SmtpSession) -> None:
        timer = session.expiry
        if isinstance(timer, asyncio.TimerHandle):
            timer.cancel()
        session.expiry = None

    def _close_later(self, session: SmtpSession) -> None:
        task = asyncio.ensure_future(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """QUIT every cached session (at stop)."""
        idle, self._idle = self._idle, {}
        for sessions in idle.values():
            for session in sessions:
                self._cancel_timer(session)
                await session.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class DestinationLimits:
    """At most `limit` sessions at once per destination (Postfix default_destination_concurrency_limit).
    Destinations without a session in use are forgotten, so the table stays as small as the traffic."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def slot(self, destination: str) -> AsyncIterator[None]:
        sem, users = self._slots.get(destination, (asyncio.Semaphore(self.limit), 0))
        self._slots[destination] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._slots[destination]
            if users <= 1:
                del self._slots[destination]
            else:
                self._slots[destination] = (sem, users - 1)
