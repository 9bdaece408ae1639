"""Writes that survive a crash: what the spool and the Maildir writer both rely on before saying 250."""

from __future__ import annotations

import os
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
