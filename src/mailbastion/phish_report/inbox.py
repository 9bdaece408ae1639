"""A user's recent INBOX, read from their Maildir, for the portal's "report a phishing message" page.

    inbox = InboxReader(maildir)
    page = inbox.page(address, offset=0, limit=25)     # InboxPage(entries, total, next_offset)
    raw = inbox.read(address, key)                     # KeyError when no such message in that INBOX

An entry's `key` is its Maildir file name without the `:2,<flags>` info (Maildir's unique part stays the
same when a client marks it read and moves it from new/ to cur/). A key coming back from a form is checked
against a strict pattern and looked up only in that user's own INBOX: never a path. Header values are
decoded text; the portal escapes them when it shows them.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mailbastion.core.address import Address
from mailbastion.core.header_block import HeaderBlock
from mailbastion.mailbox.maildir import MaildirStore
from mailbastion.spam.features import decode_header

__all__ = ["InboxEntry", "InboxPage", "InboxReader"]

_KEY = re.compile(r"^[A-Za-z0-9._=,\\-]{1,255}$")
HEADER_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class InboxEntry:
    key: str
    date: str  # the Date field as written ("" when none)
    sender: str  # the From field, decoded
    subject: str  # decoded
    delivered: float  # the file's modification time: when the MDA wrote it


@dataclass(frozen=True, slots=True)
class InboxPage:
    entries: tuple[InboxEntry, ...]
    total: int
    offset: int
    next_offset: int | None  # None on the last page


def _key_of(name: str) -> str:
    return name.split(":", 1)[0]


class InboxReader:
    def __init__(self, maildir: MaildirStore) -> None:
        self.maildir = maildir

    def _files(self, address: Address) -> list[tuple[float, str, Path]]:
        try:
            box = self.maildir.mailbox_dir(address)
        except ValueError:
            return []
        out = []
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(box / sub):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.is_file():
                            out.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
        out.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return out

    def page(self, address: Address, *, offset: int = 0, limit: int = 25) -> InboxPage:
        files = self._files(address)
        offset = max(0, min(offset, len(files)))
        entries = []
        for mtime, name, path in files[offset: offset + limit]:
            try:
                with open(path, "rb") as fh:
                    head = fh.read(HEADER_READ)
            except OSError:
                continue
            block = HeaderBlock.parse(head)
            entries.append(InboxEntry(_key_of(name), decode_header(block.first("date") or ""),
                                      decode_header(block.first("from") or ""),
                                      decode_header(block.first("subject") or ""), mtime))
        nxt = offset + limit if offset + limit < len(files) else None
        return InboxPage(tuple(entries), len(files), offset, nxt)

    def find(self, address: Address, key: str) -> Path:
        """The file of `key` in the INBOX of `address`. Raises KeyError when the key is malformed or absent."""
        if not _KEY.match(key) or key in (".", ".."):
            raise KeyError(key)
        box = self.maildir.mailbox_dir(address)
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(box / sub):
                    if _key_of(entry.name) == key:
                        return Path(entry.path)
        raise KeyError(key)

    def read(self, address: Address, key: str) -> bytes:
        path = self.find(address, key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
