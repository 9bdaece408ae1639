"""The Maildirs belong to the mail user, and the mail user can reach them.

`prepare_mail_root(settings, user)` runs before Dovecot starts, as root:
- the mail root (`mailbox.root`) and everything in it but its dot-entries (the MDA's own `.delivered`
  journal) are given to the mail user once, when the root is not theirs yet (an existing deployment whose
  Maildirs root wrote); from then on the MDA gives what it creates to the root's owner (mailbox/maildir.py);
- every folder above the mail root must let the mail user through, and every folder above Dovecot's files
  (the configuration folder and base_dir) must let Dovecot's own users through (the x bit that applies to
  each). The deployment's own data_dir is fixed when it does not: it gets o+x (pass through, not list), and
  its files keep their own modes (the configuration 0640, keys in tls/ 0700, databases 0600, spool 0700,
  the Maildirs 0700 of the mail user). Any other folder in the way is named in a ConfigError, for the
  administrator to decide.
Running as the mail user itself (rootless), nothing is changed; a folder in the way is still named.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mailbastion.core.errors import ConfigError
from mailbastion.imap.layout import MailUser

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

log = logging.getLogger("mailbastion.imap")


def prepare_paths(settings: Settings, user: MailUser, dovecot_users: list[MailUser], places: list[Path]) -> Path:
    """The mail root for `user`, and `places` (Dovecot's folders) reachable by `dovecot_users` too."""
    root = prepare_mail_root(settings, user)
    for place in places:
        for who in [user, *dovecot_users]:
            _check_path(settings, place, who)
    return root


def prepare_mail_root(settings: Settings, user: MailUser) -> Path:
    root = settings.path(settings.mailbox.root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.geteuid() == 0:
        st = os.stat(root)
        if (st.st_uid, st.st_gid) != (user.uid, user.gid):
            count = give_tree(root, user)
            log.warning("imap: the Maildirs below %s now belong to the mail user %s (%d entries)", root, user.name,
                        count)
    _check_path(settings, root / "x", user)
    return root


def give_tree(root: Path, user: MailUser) -> int:
    """chown the root and its subtree, leaving out the root's dot-entries (the MDA's journal)."""
    count = 1
    os.lchown(root, user.uid, user.gid)
    for entry in os.scandir(root):
        if entry.name.startswith("."):
            continue
        os.lchown(entry.path, user.uid, user.gid)
        count += 1
        if entry.is_dir(follow_symlinks=False):
            for folder, dirs, files in os.walk(entry.path):
                for name in dirs + files:
                    os.lchown(os.path.join(folder, name), user.uid, user.gid)
                    count += 1
    return count


def _check_path(settings: Settings, target: Path, user: MailUser) -> None:
    data_dir = settings.base_dir
    for folder in reversed(target.parents):
        if user.can_search(folder):
            continue
        if folder == data_dir and os.geteuid() == 0:
            mode = os.stat(folder).st_mode & 0o7777
            os.chmod(folder, mode | 0o001)
            log.warning("imap: %s is now %o (others may pass through, not list it), so Dovecot's users reach "
                        "their files and the Maildirs", folder, mode | 0o001)
            continue
        st = os.stat(folder)
        raise ConfigError(f"the user {user.name} (Dovecot) cannot reach {target}: {folder} "
                          f"(mode {st.st_mode & 0o7777:o}, uid {st.st_uid}, gid {st.st_gid}) does not let it through; "
                          f"e.g. `chmod o+x {folder}`, or set server.data_dir elsewhere", key="imap",
                          file=str(settings.source) if settings.source else None)


__all__ = ["give_tree", "prepare_mail_root", "prepare_paths"]
