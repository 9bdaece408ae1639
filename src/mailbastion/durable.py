"""Writes that survive a crash: what the spool and the Maildir writer both rely on before saying 250."""

from __future__ import annotations

import os
import threading
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
    """fsync one directory on behalf of many threads at once (group commit).

    A writer renames its file into the directory, then calls `sync()` in the same worker thread; it
    returns only after an fsync of the directory that *started after* the call, so the rename is
    durable when it returns. Threads that arrive while an fsync runs share the next one: under load one
    fsync makes a whole batch of renames durable, and a lone writer pays exactly one, with no added wait.
    Its OSError is raised to every thread of that round. Blocking: call it from the worker thread that
    did the write, so a commit costs the event loop one hand-off, not two (the loop used to await a
    second executor round trip for the directory fsync alone).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._begun = 0  # rounds started
        self._ended = 0  # rounds finished
        self._running = False
        self._errors: dict[int, OSError] = {}  # round -> its error (the last few rounds)
        self.rounds = 0  # fsyncs done (for tests and benchmarks)
        self.synced = 0  # callers served
        self.waiting = 0  # callers waiting for a round now

    def sync(self) -> None:
        with self._cond:
            target = self._begun + 1  # the first round that starts after this call
            while self._ended < target:
                if self._running:
                    self.waiting += 1
                    self._cond.wait()
                    self.waiting -= 1
                    continue
                self._running = True
                self._begun += 1
                mine = self._begun
                error: OSError | None = None
                self._cond.release()
                try:
                    fsync_dir(self.path)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._ended = mine
                    self.rounds += 1
                    if error is not None:
                        self._errors[mine] = error
                    for old in [r for r in self._errors if r < mine - 64]:
                        del self._errors[old]  # every waiter of a round that old has read its error
                    self._cond.notify_all()
            self.synced += 1
            failed = self._errors.get(target)
        if failed is not None:
            raise failed
