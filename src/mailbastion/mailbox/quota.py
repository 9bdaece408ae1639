"""Mailbox quota: a cheap size counter in the Maildir++ `maildirsize` format, recomputed when missing.

`maildirsize` holds the limit on its first line (`<bytes>S`) and then one `<bytes> <count>` line per change;
the usage is the sum of those lines. We append one line per delivery (an O_APPEND write, under the
mailbox's lock), and rewrite the file from a scan of the Maildir when it is missing, unreadable or has
grown past 5120 bytes (the Maildir++ rule), so an IMAP server that understands Maildir++ quota agrees.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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
def mailbox_lock(mailbox: Path | str) -> Iterator[None]:
    """An exclusive lock on one mailbox (between processes and threads: each call opens its own fd)."""
    fd = lock_mailbox(mailbox)
    try:
        yield
    finally:
        os.close(fd)


def lock_mailbox(mailbox: Path | str) -> int:
    """`mailbox_lock` without the context manager: returns the locked fd; closing it unlocks."""
    fd = os.open(os.path.join(mailbox, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _same_owner(fd, mailbox)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _same_owner(fd: int, mailbox: Path | str) -> None:
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


def read_usage(mailbox: Path | str) -> tuple[int, int] | None:
    """The counter's (bytes, messages), or None when the file is missing, too large or unreadable.

    Fast path: when the file still starts with exactly the bytes this process read last time (it is
    only appended to between rewrites), their sums are reused and only the lines after them are
    parsed, usually just the line of the last delivery, instead of up to 5 KB of lines per delivery."""
    key = os.fspath(mailbox)
    try:
        fd = os.open(os.path.join(key, SIZE_FILE), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        data = b""
        while len(data) <= MAX_SIZE_FILE and (chunk := os.read(fd, MAX_SIZE_FILE + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_SIZE_FILE:
        return None
    view = memoryview(data)
    known = _read_before.get(key)
    digest = None
    if known is not None and len(data) >= known[0]:
        digest = hashlib.blake2b(view[:known[0]], digest_size=16)
    if digest is not None and known is not None and digest.digest() == known[1]:
        if len(data) == known[0]:
            return max(known[2], 0), max(known[3], 0)  # nothing appended since
        summed = _sum_lines(data[known[0]:], known[2], known[3])
        digest.update(view[known[0]:])
    else:
        summed = _sum_lines(data, 0, 0, skip_first=True)
        digest = hashlib.blake2b(view, digest_size=16)
    if summed is None:
        _read_before.pop(key, None)
        return None
    total, count = summed
    if data.endswith(b"\n"):  # whole lines only: a line being appended is never split across two reads
        if len(_read_before) >= _REMEMBERED:
            _read_before.clear()
        _read_before[key] = (len(data), digest.digest(), total, count)
    return max(total, 0), max(count, 0)


# Per mailbox, what read_usage read last: (length, digest of those bytes, their bytes sum, their count).
_read_before: dict[str, tuple[int, bytes, int, int]] = {}
_REMEMBERED = 100_000


def _sum_lines(data: bytes, total: int, count: int, *, skip_first: bool = False) -> tuple[int, int] | None:
    """Add the `<bytes> <count>` lines of `data` (after its first, the limit line, with `skip_first`)."""
    lines = data.decode("ascii", "replace").splitlines()
    for line in lines[1:] if skip_first else lines:
        parts = line.split()
        if len(parts) != 2:
            return None
        try:
            total, count = total + int(parts[0]), count + int(parts[1])
        except ValueError:
            return None
    return total, count


def rewrite_usage(mailbox: Path | str, limit: int) -> tuple[int, int]:
    """Recompute from the Maildir and replace the counter file (tmp + rename). Call under `mailbox_lock`."""
    mailbox = Path(mailbox)
    total, count = scan_usage(mailbox)
    tmp = mailbox / f".{SIZE_FILE}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        _same_owner(f.fileno(), mailbox)  # IMAP (Dovecot, as the mail user) reads and updates it too
        f.write(f"{limit}S\n{total} {count}\n".encode("ascii"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, mailbox / SIZE_FILE)
    return total, count


def usage(mailbox: Path | str, limit: int) -> int:
    """Bytes in use, from the counter (recomputed when needed). Call under `mailbox_lock`."""
    known = read_usage(mailbox)
    return (known if known is not None else rewrite_usage(mailbox, limit))[0]


def add_usage(mailbox: Path | str, size: int, count: int = 1) -> None:
    """Record a delivery (or, with negative numbers, a removal). Call under `mailbox_lock`. A counter
    removed meanwhile (by IMAP, say) is left missing: the next read recomputes it, this change included."""
    try:
        fd = os.open(os.path.join(mailbox, SIZE_FILE), os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        return
    try:
        os.write(fd, f"{size} {count}\n".encode("ascii"))
    finally:
        os.close(fd)


def check(mailbox: Path | str, size: int, limit: int) -> None:
    """Raise QuotaExceeded when `size` more bytes would pass `limit` (0 = unlimited). Under `mailbox_lock`."""
    current = usage(mailbox, limit)
    if limit and current + size > limit:
        raise QuotaExceeded(f"mailbox {os.path.basename(mailbox)} full: {current} + {size} > {limit} bytes")


__all__ = ["QuotaExceeded", "add_usage", "check", "lock_mailbox", "mailbox_lock", "read_usage", "rewrite_usage",
           "scan_usage", "usage"]
