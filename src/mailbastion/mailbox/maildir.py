"""Maildir delivery: one message, atomically, under quota.

Layout: `<root>/<domain>/<local>/{cur,new,tmp}`, the Junk folder as the Maildir++ subfolder `.Junk/`.
A delivery writes `tmp/<unique>` (O_EXCL), fsyncs it, hard-links it into `new/` (a link never replaces an
existing file, unlike rename), removes the tmp name and fsyncs both folders: once `deliver` returns, the
message survives a crash, and a reader never sees a partial file. Quota is checked and counted under a
per-mailbox lock, so two deliveries cannot both squeeze under the limit.

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
import hashlib
import itertools
import os
import re
import secrets
import socket
import time
from pathlib import Path

from mailbastion.core.address import Address
from mailbastion.core.verdict import Folder
from mailbastion.durable import fsync_dir, write_durably
from mailbastion.mailbox import quota
from mailbastion.mailbox.quota import QuotaExceeded

_SAFE = re.compile(r"[a-z0-9._=-]")
_counter = itertools.count(1)


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

    def mailbox_dir(self, address: Address) -> Path:
        if address.is_literal or address.is_quoted or not address.domain or "/" in address.domain \
                or address.domain.startswith("."):
            raise ValueError(f"{address}: not a hosted mailbox address")
        return self.root / address.domain / safe_local(address.unquoted_local)

    def folder_dir(self, address: Address, folder: Folder = Folder.INBOX) -> Path:
        box = self.mailbox_dir(address)
        return box / f".{self.junk_folder}" if folder is Folder.JUNK else box

    def owner(self) -> tuple[int, int] | None:
        """(uid, gid) that what we create must get: the root's owner when we run as root and it is not
        root's; None when files may keep whoever creates them."""
        if os.geteuid() != 0:
            return None
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return None
        return None if st.st_uid == 0 else (st.st_uid, st.st_gid)

    def ensure(self, address: Address) -> Path:
        """Create the mailbox (and its Junk folder) if needed; returns the mailbox folder."""
        box = self.mailbox_dir(address)
        owner = self.owner()
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
        limit = self.default_quota_bytes if quota_bytes is None else quota_bytes
        box = self.ensure(address)
        where = self.folder_dir(address, folder)
        with quota.mailbox_lock(box):
            name = self.unique_name(len(message))
            final = where / "new" / (self.copy_name(queue_id, address, len(message)) if queue_id else name)
            if queue_id and final.exists():
                return final
            quota.check(box, len(message), limit)
            tmp = where / "tmp" / name
            try:
                write_durably(tmp, message, exclusive=True)
                owner = self.owner()
                if owner is not None:
                    os.chown(tmp, *owner)  # before the link: a reader never meets a file it cannot open
                try:
                    os.link(tmp, final)  # never replaces: a deterministic name delivered twice fails here
                except FileExistsError:
                    if not queue_id:
                        raise
                    return final
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            fsync_dir(where / "new")
            fsync_dir(where / "tmp")
            quota.add_usage(box, len(message))
        return final

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
