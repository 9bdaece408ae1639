"""The queue manager's wake-up FIFO: `<spool root>/wakeup` (Postfix's `public/qmgr`).

Whatever puts an entry into incoming/ from outside the queue manager's process — the SMTP acceptor
processes (`server.workers` > 1), the CLI's `queue retry`/`flush`/`release`, the portal's quarantine
releases, the lifecycle notices — writes one byte here after the entry is durable, and the manager scans at
once instead of at its next full scan (`spool.scan_interval_seconds`). The byte says nothing: the scan
finds the entry. A writer never waits and never fails because of the FIFO: no FIFO, no reader (ENXIO),
a full pipe (wake-ups already pending) or any other error, and the full scan picks the entry up as before.

    poke(root)                                  # a writer, after its fsync
    reader = WakeupReader(root); reader.attach(callback)   # the queue manager, on its event loop
    reader.close()

The reader opens the FIFO read-write, so that it never sees end-of-file when the last writer closes (which
would make it readable for ever) and writers always find a reader while it runs. It replaces anything else
under the name, and a FIFO it may not open (left by a server that ran as another user). The spool directory is
the service user's, mode 0700, and the FIFO 0600: only that user (and root) can write to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["FIFO_NAME", "WakeupReader", "poke"]

log = logging.getLogger("mailbastion.queue")

FIFO_NAME = "wakeup"


def poke(root: Path | str) -> bool:
    """Tell the queue manager of `root` that incoming/ has something new. Never blocks or raises; True
    when a byte was written (or the pipe was full of wake-ups already)."""
    try:
        # O_NOFOLLOW: root's CLI must never be led to write into a FIFO elsewhere by a link in the spool
        fd = os.open(os.path.join(root, FIFO_NAME), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # no FIFO (no manager ever ran here), no reader (ENXIO), a link (ELOOP): the full scan finds it
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False  # something else under that name: never write into a file
        os.write(fd, b"\0")
        return True
    except BlockingIOError:
        return True  # full: the manager has wake-ups waiting
    except OSError:
        return False
    finally:
        os.close(fd)


class WakeupReader:
    """The queue manager's end of the FIFO (created if missing)."""

    def __init__(self, root: Path | str) -> None:
        self.path = os.path.join(root, FIFO_NAME)
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, callback: Callable[[], None]) -> bool:
        """Call `callback` on the running loop whenever writers poked (several pokes, one call). False,
        with a warning, when the FIFO cannot be used: the manager then relies on its scans alone."""
        try:
            self._fd = self._open()
        except OSError as exc:
            log.warning("queue wake-up FIFO %s unusable (%s): new mail from other processes waits for the "
                        "next scan (spool.scan_interval_seconds)", self.path, exc)
            return False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._drain, callback)
        return True

    def _open(self) -> int:
        try:
            os.mkfifo(self.path, 0o600)
        except FileExistsError:
            if not stat.S_ISFIFO(os.lstat(self.path).st_mode):  # a leftover file or link: replace it
                self._replace()
        flags = os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags)
        except PermissionError:  # left by a server that ran as another user (server.user changed): ours now
            self._replace()
            fd = os.open(self.path, flags)
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):  # replaced between the check and the open
            os.close(fd)
            raise OSError(f"{self.path} is not a FIFO")
        return fd

    def _replace(self) -> None:
        os.unlink(self.path)
        os.mkfifo(self.path, 0o600)

    def _drain(self, callback: Callable[[], None]) -> None:
        fd = self._fd
        if fd is None:
            return
        with contextlib.suppress(OSError):  # BlockingIOError: drained
            while len(os.read(fd, 65536)) == 65536:
                pass
        callback()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(fd)
        self._loop = None
        os.close(fd)
