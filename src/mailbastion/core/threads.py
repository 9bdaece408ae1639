"""Blocking calls handed to threads from the event loop, cheaper than `asyncio.to_thread`.

A call is handed over through a `queue.SimpleQueue` (C, one lock) and its result comes back with one
`call_soon_threadsafe`: no `concurrent.futures.Future` with its Condition and chained callbacks, no
context copy. Measured on the 2-core bench VM under uvloop, four calls in flight: ~33 µs of CPU per
round trip against ~84 µs for `asyncio.to_thread` (`bench/handoff_bench.py`).

What runs here must not read a `ContextVar` (the caller's context is not copied): the spool's write,
the anti-virus walk and engines, the MDA's directory look-ups and Maildir writes read none. A caller
that stops waiting (cancelled) does not stop the call, as with an executor.

    await run_blocking(os.fsync, fd)                     # the process's shared threads
    workers = Workers(8); await workers.run(fn, arg); workers.close()   # threads of one's own

`close()` is for when no more calls come (a call made while it runs may take a stop meant for an old
thread); the shared threads are never closed: they wait, as daemon threads, until the process ends.

Threads start on first use. A forked child starts without the parent's threads (they do not survive a
fork) and starts its own on its first call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["THREADS", "Workers", "run_blocking"]

_T = TypeVar("_T")
_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]

# As many as asyncio's default executor, which these hand-offs replace: the process's shared threads, and the
# MDA's own.
THREADS = min(32, (os.cpu_count() or 1) + 4)

_all: weakref.WeakSet[Workers] = weakref.WeakSet()


class Workers:
    """At most `count` threads running blocking calls handed over by `run`."""

    def __init__(self, count: int, *, name: str = "worker") -> None:
        if count < 1:
            raise ValueError("Workers needs at least one thread")
        self.count, self.name = count, name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        _all.add(self)

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(*args)` on one of the threads; its result, or its exception raised here."""
        if len(self._threads) < self.count:
            self._start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_T] = loop.create_future()
        self._queue.put((loop, done, fn, args))
        return await done

    def _start(self) -> None:
        with self._start_lock:
            while len(self._threads) < self.count:
                t = threading.Thread(target=self._work, args=(self._queue,), daemon=True,
                                     name=f"{self.name}-{len(self._threads)}")
                t.start()
                self._threads.append(t)

    @staticmethod
    def _work(q: queue.SimpleQueue[_Item | None]) -> None:
        while (item := q.get()) is not None:
            loop, done, fn, args = item
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the caller, as an executor does
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(_settle, done, result, error)
            del item, done, result, error  # nothing of a finished call kept alive while the queue is empty

    def close(self) -> None:
        """Stop the threads once the calls queued before are done (a later `run` starts them again)."""
        with self._start_lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for t in threads:
            t.join()

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent's threads are not here, and its queue or lock may have been
        held by one of them at the fork. Start afresh."""
        self._queue = queue.SimpleQueue()
        self._threads = []
        self._start_lock = threading.Lock()


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.done():  # the caller was cancelled
        return
    if error is None:
        done.set_result(result)
    else:
        done.set_exception(error)


_shared: Workers | None = None
_shared_lock = threading.Lock()


async def run_blocking(fn: Callable[..., _T], *args: Any) -> _T:
    """`fn(*args)` on the process's shared threads (see the module docstring)."""
    global _shared
    workers = _shared
    if workers is None:
        with _shared_lock:
            if _shared is None:
                _shared = Workers(THREADS, name="blocking")
            workers = _shared
    return await workers.run(fn, *args)


def _after_fork_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()
    for workers in list(_all):
        workers._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
