"""Maildir delivery: one message, atomically, under quota.

Layout: `<root>/<domain>/<local>/{cur,new,tmp}`, the Junk folder as the Maildir++ subfolder `.Junk/`.
A delivery writes the message into an unnamed file (O_TMPFILE in `new/`), fsyncs it, hard-links it into
`new/` under its name (linkat through /proc/self/fd; a link never replaces an existing file, unlike
rename) and fsyncs `new/`: once `deliver` returns, the message survives a crash, and a reader never sees a
partial file. A crash before the link leaves nothing at all (the unnamed inode is freed). Where the file
system cannot make unnamed files, the file is `tmp/<unique>` (O_EXCL) instead, removed after the link; a
`tmp/` leftover of a crash there is harmless (nothing counts or reads it, Maildir readers clean `tmp/`),
so `tmp/` is not fsynced. Quota is checked and counted under a per-mailbox lock, so two deliveries cannot
both squeeze under the limit.

Cost: a store remembers which mailboxes it has created (with the owner they were given), so a delivery
does not re-create six folders and re-check their ownership each time; a folder removed under us is
noticed by the delivery that misses it (ENOENT before anything is written) and the mailbox is created
again. Measured figures: docs/performance.md.

Bytes are stored as given; the LMTP handler hands over LF line endings, the Unix Maildir convention.

Ownership: what is created below the root belongs to the root's owner. When the MDA runs as root and the
root belongs to the mail user (`imap.mail_user`, whose uid Dovecot reads mail as), every folder and message
is given to that user, so IMAP can read what the MDA writes; run as the mail user, nothing changes.

Exactly-once delivery (`journal.py`): a copy of a queue entry gets a file name that is the same
whenever that entry is delivered to that mailbox (`<queue id>.B<mailbox digest>.<host>,S=<size>`, the
queue id first as Maildir's time-ordered unique part), so a second delivery of it finds the first in
new/ (the hard link refuses to replace it) or, after a mail client moved it, in cur/.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import re
import secrets
import socket
import time
from pathlib import Path

from mailbastion.core.address import Address
from mailbastion.core.verdict import Folder
from mailbastion.durable import write_fd
from mailbastion.mailbox import quota
from mailbastion.mailbox.quota import QuotaExceeded

log = logging.getLogger("mailbastion.mda")

_SAFE = re.compile(r"[a-z0-9._=-]")
_counter = itertools.count(1)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)  # Linux only
_TMPFILE_FLAGS = _O_TMPFILE | os.O_WRONLY
# What open(O_TMPFILE) fails with where the file system (or the kernel) cannot make unnamed files.
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
_REMEMBERED = 100_000  # mailboxes known to exist (and whose paths are known), per store


class _Vanished(Exception):
    """A folder of a mailbox we created earlier is missing; nothing was written. `missing` is the error."""

    def __init__(self, missing: FileNotFoundError) -> None:
        super().__init__(str(missing))
        self.missing = missing


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def safe_local(local: str) -> str:
    """A local part as one path component: lower case, unsafe characters as %XX, never '.' or '..' and
    never starting with a dot (which Maildir++ reserves for folders)."""
    out = []
    for i, ch in enumerate(local.lower()):
        if _SAFE.fullmatch(ch) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _hostname() -> str:
    # Maildir: "/" and ":" in the host name are written as octal escapes (and "," too, which
    # Maildir++ uses to separate the ",S=" size).
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072").replace(",", r"\054")


class MaildirStore:
    """All mailboxes below `root`. Methods block (fsync); async callers use `asyncio.to_thread`."""

    def __init__(self, root: Path | str, *, default_quota_bytes: int = 0, junk_folder: str = "Junk") -> None:
        if not junk_folder or "/" in junk_folder or junk_folder.startswith("."):
            raise ValueError(f"invalid junk folder name {junk_folder!r}")
        self.root = Path(root)
        self.default_quota_bytes = default_quota_bytes
        self.junk_folder = junk_folder
        self._host = _hostname()
        self._root = os.fspath(self.root)
        # Mailboxes this process created (or found complete), with the owner they were given: `deliver`
        # creates a mailbox once, not per message. A folder removed under us is noticed by the delivery
        # that misses it (ENOENT before anything is written), which creates the mailbox again.
        self._ensured: set[tuple[str, tuple[int, int] | None]] = set()
        self._boxes: dict[Address, str] = {}  # address → its mailbox folder, as a string
        # Write into new/ as an unnamed file (O_TMPFILE, then linkat through /proc/self/fd) while the file
        # system allows it; otherwise through tmp/.
        self._tmpfile = bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")

    def mailbox_dir(self, address: Address) -> Path:
        if address.is_literal or address.is_quoted or not address.domain or "/" in address.domain \
                or address.domain.startswith("."):
            raise ValueError(f"{address}: not a hosted mailbox address")
        return self.root / address.domain / safe_local(address.unquoted_local)

    def _box(self, address: Address) -> str:
        """`mailbox_dir` as a string, remembered (the hot path joins no Path objects)."""
        box = self._boxes.get(address)
        if box is None:
            box = os.fspath(self.mailbox_dir(address))
            if len(self._boxes) >= _REMEMBERED:
                self._boxes.clear()
            self._boxes[address] = box
        return box

    def _remember(self, key: tuple[str, tuple[int, int] | None]) -> None:
        if len(self._ensured) >= _REMEMBERED:
            self._ensured.clear()  # forgetting only costs the next delivery to each a few mkdir calls
        self._ensured.add(key)

    def folder_dir(self, address: Address, folder: Folder = Folder.INBOX) -> Path:
        box = self.mailbox_dir(address)
        return box / f".{self.junk_folder}" if folder is Folder.JUNK else box

    def owner(self) -> tuple[int, int] | None:
        """(uid, gid) that what we create must get: the root's owner when we run as root and it is not
        root's; None when files may keep whoever creates them."""
        if os.geteuid() != 0:
            return None
        try:
            st = os.stat(self._root)
        except FileNotFoundError:
            return None
        return None if st.st_uid == 0 else (st.st_uid, st.st_gid)

    def ensure(self, address: Address) -> Path:
        """Create the mailbox (and its Junk folder) if needed; returns the mailbox folder."""
        return self._ensure(address, self.owner())

    def _ensure(self, address: Address, owner: tuple[int, int] | None) -> Path:
        box = self.mailbox_dir(address)
        for folder, is_sub in ((box, False), (box / f".{self.junk_folder}", True)):
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            if is_sub and not (folder / "maildirfolder").exists():
                (folder / "maildirfolder").touch(mode=0o600)
        if owner is not None:
            junk = box / f".{self.junk_folder}"
            give(owner, box.parent, box, junk, junk / "maildirfolder",
                 *(folder / sub for folder in (box, junk) for sub in ("cur", "new", "tmp")))
        return box

    def unique_name(self, size: int) -> str:
        now = time.time()
        sec, usec = int(now), int((now % 1) * 1_000_000)
        return (f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}R{secrets.token_hex(8)}.{self._host}"
                f",S={size}")

    def copy_prefix(self, queue_id: str, address: Address) -> str:
        """The start of the deterministic name of `queue_id`'s copy in the mailbox of `address`."""
        digest = hashlib.blake2b(address.normalized.encode("utf-8"), digest_size=8).hexdigest()
        return f"{queue_id}.B{digest}."

    def copy_name(self, queue_id: str, address: Address, size: int) -> str:
        return f"{self.copy_prefix(queue_id, address)}{self._host},S={size}"

    def find_copy(self, queue_id: str, address: Address, *, folder: Folder = Folder.INBOX) -> Path | None:
        """The copy of `queue_id` already in the folder (new/, or cur/ where a mail client moved it
        and added flags), or None. Lists the folder: only for the rare recovery after a crash."""
        where = self.folder_dir(address, folder)
        prefix = self.copy_prefix(queue_id, address)
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(where / sub):
                    if entry.name.startswith(prefix):
                        return Path(entry.path)
        return None

    def deliver(self, address: Address, message: bytes, *, folder: Folder = Folder.INBOX,
                quota_bytes: int | None = None, queue_id: str | None = None) -> Path:
        """Store `message` in `folder` of the mailbox of `address` (Junk: the configured junk folder) and
        return the path in
        new/. Raises QuotaExceeded when it does not fit (`quota_bytes`, else the default; 0 = unlimited),
        OSError when the disk fails. Nothing is left behind in either case.

        With `queue_id`, the file name is that copy's deterministic name, and a copy already in new/
        is not written again (its path is returned, quota unchanged)."""
        return Path(self.deliver_file(address, message, folder=folder, quota_bytes=quota_bytes, queue_id=queue_id))

    def deliver_file(self, address: Address, message: bytes, *, folder: Folder = Folder.INBOX,
                     quota_bytes: int | None = None, queue_id: str | None = None) -> str:
        """`deliver`, returning the path as a string (the MDA's hot path makes no Path object)."""
        limit = self.default_quota_bytes if quota_bytes is None else quota_bytes
        box = self._box(address)
        where = f"{box}/.{self.junk_folder}" if folder is Folder.JUNK else box
        size = len(message)
        name = self.copy_name(queue_id, address, size) if queue_id else self.unique_name(size)
        owner = self.owner()
        key = (box, owner)
        for attempt in (1, 2):
            if key not in self._ensured:
                self._ensure(address, owner)
                self._remember(key)
            try:
                self._store(box, where, name, message, limit, owner, queue_id is not None)
            except _Vanished as exc:
                # A folder of the mailbox went away since we created it (the mailbox was removed under us):
                # nothing was written yet, so create it again and write once more.
                self._ensured.discard(key)
                if attempt == 2:
                    raise exc.missing from None
                continue
            except FileNotFoundError:
                self._ensured.discard(key)
                raise
            break
        return f"{where}/new/{name}"

    def _store(self, box: str, where: str, name: str, message: bytes, limit: int,
               owner: tuple[int, int] | None, deterministic: bool) -> None:
        """One try of `deliver`, in a mailbox believed to exist. Raises _Vanished (nothing written, nothing
        left) when a folder of it is missing."""
        try:
            new_fd = os.open(f"{where}/new", _DIR_FLAGS)
        except FileNotFoundError as exc:
            raise _Vanished(exc) from exc
        try:
            try:
                lock = quota.lock_mailbox(box)
            except FileNotFoundError as exc:
                raise _Vanished(exc) from exc
            try:
                if deterministic and _exists(name, new_fd):
                    os.fsync(new_fd)  # the copy an earlier try made: make sure its link is durable too
                    return
                quota.check(box, len(message), limit)
                linked = self._write_new(where, new_fd, name, message, owner, deterministic)
                os.fsync(new_fd)  # the link is durable: now, and only now, the copy is delivered
                if linked:
                    quota.add_usage(box, len(message))
            finally:
                os.close(lock)
        finally:
            os.close(new_fd)

    def _write_new(self, where: str, new_fd: int, name: str, message: bytes, owner: tuple[int, int] | None,
                   deterministic: bool) -> bool:
        """Write `message`, fsync it and hard-link it as `name` into new/ (`new_fd`); a reader never sees
        it partial, and a crash before the link leaves nothing visible. A name already in new/ raises
        FileExistsError, except for a deterministic name (that copy is there already: False).

        The order is the guarantee: the data is durable (fsync of the file) before it has a name, so no
        crash can leave an empty or short file under a name that `find_copy` would take for delivered.
        The link itself is one journal transaction for the new name and the inode's link count (ext4,
        XFS), made durable by the caller's fsync of new/."""
        fd, tmp = self._open_unnamed(where, new_fd, len(message))
        try:
            if owner is not None:
                os.fchown(fd, *owner)  # before the link: a reader never meets a file it cannot open
            write_fd(fd, message)
            try:
                if tmp is None:
                    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=new_fd)  # linkat(AT_SYMLINK_FOLLOW)
                else:
                    os.link(tmp, name, dst_dir_fd=new_fd)  # never replaces, unlike rename
            except FileExistsError:
                if not deterministic:
                    raise
                return False
            except FileNotFoundError as exc:  # new/ (or our tmp/ file) removed meanwhile: nothing is visible
                raise _Vanished(exc) from exc
            return True
        finally:
            os.close(fd)
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _open_unnamed(self, where: str, new_fd: int, size: int) -> tuple[int, str | None]:
        """A file to write the copy into before it gets its name: an O_TMPFILE inode in new/ when the
        file system supports it (no name at all until the link, so a crash leaves nothing), else
        `tmp/<unique>` (O_EXCL), whose path is returned with it."""
        if self._tmpfile:
            try:
                return os.open(".", _TMPFILE_FLAGS, 0o600, dir_fd=new_fd), None
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE:
                    raise
                self._tmpfile = False
                log.info("maildir: %s: no O_TMPFILE support (%s): writing through tmp/", where, exc.strerror)
        tmp = f"{where}/tmp/{self.unique_name(size)}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileNotFoundError as exc:
            raise _Vanished(exc) from exc

    def usage(self, address: Address) -> int:
        box = self.ensure(address)
        with quota.mailbox_lock(box):
            return quota.usage(box, self.default_quota_bytes)

    def recalculate(self, address: Address) -> int:
        """Recount the mailbox (after messages were removed by something that does not update the counter)."""
        box = self.ensure(address)
        with quota.mailbox_lock(box):
            return quota.rewrite_usage(box, self.default_quota_bytes)[0]


def give(owner: tuple[int, int], *paths: Path) -> None:
    """chown each path that exists and is not owned by `owner` yet (one stat each when nothing changes)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != owner:
                os.lchown(path, *owner)


__all__ = ["MaildirStore", "QuotaExceeded", "give", "safe_local"]
