"""Mailbox quota: a cheap size counter in the Maildir++ `maildirsize` format, recomputed when missing.

`maildirsize` holds the limit on its first line (`<bytes>S`) and then one `<bytes> <count>` line per change;
the usage is the sum of those lines. We append one line per delivery (an O_APPEND write, under the
mailbox's lock), and rewrite the file from a scan of the Maildir when it is missing, unreadable or has
grown past 5120 bytes (the Maildir++ rule), so an IMAP server that understands Maildir++ quota agrees.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from mailbastion.core import replies
from mailbastion.core.errors import TemporaryFailure

SIZE_FILE = "maildirsize"
LOCK_FILE = "mailbastion-quota.lock"
MAX_SIZE_FILE = 5120  # Maildir++: recalculate once the file grows past this


class QuotaExceeded(TemporaryFailure):
    """The mailbox is full: 452 4.2.2 for this recipient only; the sender retries later (RFC 3463)."""

    reply = replies.MAILBOX_FULL


@contextlib.contextmanager
def mailbox_lock(mailbox: Path) -> Iterator[None]:
    """An exclusive lock on one mailbox (between processes and threads: each call opens its own fd)."""
    fd = os.open(mailbox / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _same_owner(fd, mailbox)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _same_owner(fd: int, mailbox: Path) -> None:
    """Running as root, give a file we created in `mailbox` to the mailbox's owner (see maildir.py)."""
    if os.geteuid() != 0:
        return
    box, st = os.stat(mailbox), os.fstat(fd)
    if (st.st_uid, st.st_gid) != (box.st_uid, box.st_gid):
        os.fchown(fd, box.st_uid, box.st_gid)


def _folders(mailbox: Path) -> Iterator[Path]:
    yield mailbox
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(mailbox):
            if entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)


def _message_size(entry: os.DirEntry[str]) -> int:
    # Maildir++ names carry the size (",S=<bytes>"); trust it to avoid a stat per message.
    for part in entry.name.split(":", 1)[0].split(",")[1:]:
        if part.startswith("S=") and part[2:].isdigit():
            return int(part[2:])
    return entry.stat(follow_symlinks=False).st_size


def scan_usage(mailbox: Path) -> tuple[int, int]:
    """(bytes, messages) over cur/ and new/ of the mailbox and every Maildir++ subfolder."""
    total = count = 0
    for folder in _folders(mailbox):
        for sub in ("cur", "new"):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder / sub):
                    if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                        with contextlib.suppress(FileNotFoundError):
                            total += _message_size(entry)
                            count += 1
    return total, count


def read_usage(mailbox: Path) -> tuple[int, int] | None:
    """The counter's (bytes, messages), or None when the file is missing, too large or unreadable."""
    try:
        data = (mailbox / SIZE_FILE).read_bytes()
    except FileNotFoundError:
        return None
    if len(data) > MAX_SIZE_FILE:
        return None
    total = count = 0
    for line in data.decode("ascii", "replace").splitlines()[1:]:
        parts = line.split()
        if len(parts) != 2:
            return None
        try:
            total, count = total + int(parts[0]), count + int(parts[1])
        except ValueError:
            return None
    return max(total, 0), max(count, 0)


def rewrite_usage(mailbox: Path, limit: int) -> tuple[int, int]:
    """Recompute from the Maildir and replace the counter file (tmp + rename). Call under `mailbox_lock`."""
    total, count = scan_usage(mailbox)
    tmp = mailbox / f".{SIZE_FILE}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        _same_owner(f.fileno(), mailbox)  # IMAP (Dovecot, as the mail user) reads and updates it too
        f.write(f"{limit}S\n{total} {count}\n".encode("ascii"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, mailbox / SIZE_FILE)
    return total, count


def usage(mailbox: Path, limit: int) -> int:
    """Bytes in use, from the counter (recomputed when needed). Call under `mailbox_lock`."""
    known = read_usage(mailbox)
    return (known if known is not None else rewrite_usage(mailbox, limit))[0]


def add_usage(mailbox: Path, size: int, count: int = 1) -> None:
    """Record a delivery (or, with negative numbers, a removal). Call under `mailbox_lock`."""
    fd = os.open(mailbox / SIZE_FILE, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"{size} {count}\n".encode("ascii"))
    finally:
        os.close(fd)


def check(mailbox: Path, size: int, limit: int) -> None:
    """Raise QuotaExceeded when `size` more bytes would pass `limit` (0 = unlimited). Under `mailbox_lock`."""
    current = usage(mailbox, limit)
    if limit and current + size > limit:
        raise QuotaExceeded(f"mailbox {mailbox.name} full: {current} + {size} > {limit} bytes")


__all__ = ["QuotaExceeded", "add_usage", "check", "mailbox_lock", "read_usage", "rewrite_usage", "scan_usage",
           "usage"]
