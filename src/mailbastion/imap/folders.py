"""The folders every account has, with their SPECIAL-USE attributes (RFC 6154), in the Maildir++ layout the
MDA writes (`mailbox/maildir.py`: INBOX is the mailbox folder itself, `Junk` is `.Junk/`).

    standard_folders(settings)            [("Junk", "\\Junk"), ("Sent", "\\Sent"), ...]
    create_folders(store, address)        the Maildir++ folders on disk, for a new account

Dovecot marks them SPECIAL-USE and subscribes them at the first login (`auto = subscribe`); `account add`
creates them on disk at once, so they exist from the account's first minute, whoever looks first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mailbastion.core.address import Address
from mailbastion.mailbox.maildir import MaildirStore, give

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

# Name and RFC 6154 attribute, in the order clients show them. The Junk folder's name comes from
# `mailbox.junk_folder` (the MDA delivers there).
_OTHERS = (("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Archive", "\\Archive"), ("Trash", "\\Trash"))


def standard_folders(settings: Settings) -> list[tuple[str, str]]:
    """Every folder but INBOX, with its SPECIAL-USE attribute."""
    junk = settings.mailbox.junk_folder
    return [*_OTHERS[:3], (junk, "\\Junk"), _OTHERS[3]]


def create_folders(store: MaildirStore, address: Address, names: list[str]) -> Path:
    """INBOX, Junk and `names` as Maildir++ folders of `address` (cur/new/tmp and `maildirfolder`), given
    to the mail root's owner like everything the MDA creates. Idempotent; returns the mailbox folder."""
    box = store.ensure(address)
    owner = store.owner()
    for name in names:
        folder = box / f".{name}"
        folder.mkdir(exist_ok=True, mode=0o700)
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        marker = folder / "maildirfolder"
        if not marker.exists():
            marker.touch(mode=0o600)
        if owner is not None:
            give(owner, folder, marker, *(folder / sub for sub in ("cur", "new", "tmp")))
    return box


__all__ = ["create_folders", "standard_folders"]
