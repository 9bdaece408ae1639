"""Where Dovecot's files live for one deployment, and which user reads the mail.

    <data_dir>/imap/dovecot.conf     the whole configuration, written from our settings at each start/reload
    <data_dir>/imap/auth.lua         the passdb/userdb: asks our auth socket (auth_socket.py)
    <data_dir>/imap/sieve/           IMAPSieve scripts for Junk moves (learn-spam, learn-ham) and their binaries
    <data_dir>/imap/state/           Dovecot's state_dir
    <imap.base_dir>                  Dovecot's runtime folder (sockets, master.pid), default <data_dir>/imap/run
      mailbastion/auth               our auth socket (passdb verify, userdb lookups), for Dovecot's auth workers
      learn/learn-spam, learn-ham    our learning sockets (sieve_pipe_socket_dir), for the mail processes

Nothing is read from or written to /etc/dovecot. A UNIX socket path holds at most 107 bytes, so a base_dir
too long for Dovecot's deepest socket is replaced by a short one named after the deployment
(`/run/mailbastion/<hash>` as root, else below the runtime or temporary folder), with a log line.

The mail user: running as root (today's `make run` and the test suite), Dovecot's mail processes run as
`imap.mail_user` (a system user of its own, `mailbastion`, created by `make`), which owns the Maildirs;
Dovecot refuses to read mail as root. Running as any other user (issue 14 drops root), that user is the mail
user and Dovecot runs entirely as it ("rootless": no chroot, no privilege changes).
"""

from __future__ import annotations

import grp
import hashlib
import logging
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailbastion.core.errors import ConfigError

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

log = logging.getLogger("mailbastion.imap")

MAX_BASE_DIR = 72  # the longest socket below it is 30 bytes (`token-login/imap-urlauth-worker`-like)
USERADD = "useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin"


@dataclass(frozen=True, slots=True)
class MailUser:
    name: str
    uid: int
    gid: int
    rootless: bool  # Dovecot runs as this user alone (we are not root)

    @classmethod
    def from_settings(cls, settings: Settings) -> MailUser:
        """The mail user (see the module docstring). Raises ConfigError when `imap.mail_user` is missing."""
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return cls(entry.pw_name, entry.pw_uid, os.getegid(), rootless=True)
        name = settings.imap.mail_user
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(f"the mail user {name!r} does not exist: create it (`make run` does: {USERADD} "
                              f"{name}), name another in imap.mail_user, or set imap.enabled = false",
                              file=_source(settings), key="imap.mail_user") from None
        if entry.pw_uid == 0:
            raise ConfigError(f"the mail user {name!r} has uid 0: Dovecot never reads mail as root",
                              file=_source(settings), key="imap.mail_user")
        return cls(name, entry.pw_uid, entry.pw_gid, rootless=False)

    def groups(self) -> set[int]:
        return {self.gid, *(g.gr_gid for g in grp.getgrall() if self.name in g.gr_mem)}

    def can_search(self, path: Path) -> bool:
        """May this user pass through the folder `path` (the x bit that applies to it)?"""
        st = os.stat(path)
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            return bool(st.st_mode & 0o100)
        if st.st_gid in self.groups():
            return bool(st.st_mode & 0o010)
        return bool(st.st_mode & 0o001)


@dataclass(frozen=True, slots=True)
class DovecotLayout:
    conf_dir: Path
    base_dir: Path
    state_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> DovecotLayout:
        conf_dir = settings.path("imap")
        base = settings.path(settings.imap.base_dir)
        if len(str(base)) > MAX_BASE_DIR:
            short = _short_base_dir(settings.base_dir)
            log.info("imap: %s is too long for UNIX socket paths; Dovecot's base_dir is %s", base, short)
            base = short
        return cls(conf_dir, base, conf_dir / "state")

    @property
    def config(self) -> Path:
        return self.conf_dir / "dovecot.conf"

    @property
    def lua(self) -> Path:
        return self.conf_dir / "auth.lua"

    @property
    def sieve_dir(self) -> Path:
        return self.conf_dir / "sieve"

    @property
    def auth_socket(self) -> Path:
        return self.base_dir / "mailbastion" / "auth"

    LEARN_DIR = "learn"  # relative to base_dir (sieve_pipe_socket_dir)

    def learn_socket(self, name: str) -> Path:
        return self.base_dir / self.LEARN_DIR / name

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "master.pid"

    def instance_name(self) -> str:
        return "mailbastion-" + hashlib.sha256(str(self.conf_dir).encode()).hexdigest()[:10]


def _short_base_dir(data_dir: Path) -> Path:
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    if os.geteuid() == 0:
        parent = Path("/run/mailbastion")
    else:
        parent = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"mailbastion-{os.geteuid()}"
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(parent)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise ConfigError(f"{parent} must be a folder of uid {os.geteuid()} with mode 0700 (it holds IMAP's "
                          "sockets); remove it, or set imap.base_dir to a short path of your own",
                          key="imap.base_dir")
    return parent / digest


def _source(settings: Settings) -> str | None:
    return str(settings.source) if settings.source else None


__all__ = ["MAX_BASE_DIR", "DovecotLayout", "MailUser"]
