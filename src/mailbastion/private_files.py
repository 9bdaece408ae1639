"""Files only the service may read (private keys, the directory database) and the folders that hold them.

    write_private(path, data)             tmp (0600, O_EXCL) → fsync → rename → fsync dir: all or nothing;
                                          a replaced file keeps its owner, group and mode (at most 0640)
    write_public(path, data)              the same, 0644 (certificates)
    create_private_file(path)             an empty 0600 file when none is there (SQLite before its first open)
    private_dir(path)                     mkdir -p, and 0700 on the folders it made

The mode is given to `open(2)`, never fixed afterwards with `chmod`: a file that is created world-readable
and then narrowed can be opened by another user in between.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from mailbastion.durable import fsync_dir, write_durably

__all__ = ["create_private_file", "private_dir", "write_private", "write_public"]


def private_dir(path: Path, mode: int = 0o700) -> Path:
    """Create `path` and its missing parents with `mode`; a folder that exists is left as it is."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=mode, exist_ok=True)
        os.chmod(d, mode)  # mkdir's mode is filtered by the umask
    return path


def _replace(path: Path, data: bytes, mode: int, keep_mask: int) -> None:
    private_dir(path.parent)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    if old is not None:
        # A renewal run as root must not take the file away from the service user: keep the owner, the
        # group and the old mode, as far as `keep_mask` allows (a key never becomes world-readable).
        mode = stat.S_IMODE(old.st_mode) & keep_mask or mode
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        write_durably(tmp, data, exclusive=True, mode=mode)
        if old is not None and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(tmp, old.st_uid, old.st_gid)
        os.chmod(tmp, mode)  # the umask may have taken bits away; never adds any beyond `mode`
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically: readers see the old file or the new one, never a part.
    A new file gets `mode`; a replaced one keeps its owner, group and mode, at most 0640."""
    _replace(path, data, mode, 0o640)


def write_public(path: Path, data: bytes) -> None:
    """As write_private, for what anyone may read (certificates): 0644 (a replaced file keeps its own)."""
    _replace(path, data, 0o644, 0o644)


def create_private_file(path: Path, mode: int = 0o600) -> bool:
    """Create an empty `path` with `mode` unless it exists (its parent folder 0700 if made here).
    Returns True when it created the file. For SQLite: it makes its -wal and -shm files with the
    database file's permissions, so a database created this way stays private."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    os.close(fd)
    return True
