"""Writes that survive a crash: what the spool and the Maildir writer both rely on before saying 250."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename, link or unlink inside `path` durable (POSIX: the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_fd(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may write less than asked) and fsync it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def write_durably(path: Path, data: bytes, *, exclusive: bool = False, mode: int = 0o600) -> None:
    """Write `data` to `path` and fsync the file (not its directory: see fsync_dir)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    try:
        write_fd(fd, data)
    finally:
        os.close(fd)


class GroupSync:
    """fsync one directory on behalf of many waiters at once (group commit).

    A writer renames its file into the directory, then awaits `sync()`; it returns only after an fsync
    of the directory that *started after* the call, so the rename is durable when it returns. Callers
    that arrive while an fsync runs share the next one: under load one fsync makes a whole batch of
    renames durable, and a lone writer pays exactly one, with no added wait. The fsync runs in a thread of
    its own, so it never queues behind the file writes (and Maildir writes, directory look-ups) in the
    loop's default executor; its OSError is raised to every waiter of that round. One instance per event
    loop and directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-fsync")
        self._waiting: list[asyncio.Future[None]] = []
        self._runner: asyncio.Task[None] | None = None
        self.rounds = 0  # fsyncs done (for tests and benchmarks)
        self.synced = 0  # waiters served

    async def sync(self) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(_consume)  # a waiter cancelled meanwhile leaves no "never retrieved" warning
        self._waiting.append(done)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        # A cancelled caller stops waiting; the round still runs for the others.
        await asyncio.shield(done)

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.get_running_loop().run_in_executor(self._thread, fsync_dir, self.path)
            except OSError as exc:
                for f in batch:
                    if not f.done():
                        f.set_exception(exc)
            else:
                for f in batch:
                    if not f.done():
                        f.set_result(None)
            self.rounds += 1
            self.synced += len(batch)


def _consume(f: asyncio.Future[None]) -> None:
    if not f.cancelled():
        f.exception()
