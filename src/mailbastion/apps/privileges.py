"""Leaving root: `serve` started as root runs as `server.user` and ends with no capability at all.

    switch_user(settings)     # first thing, before any file is made, thread started or process forked:
                              # root -> the service user, able to bind ports below 1024 and nothing else
    ...                       # the roles start and bind their listeners (as the service user)
    drop_capabilities()       # every process, once its listeners are bound: nothing left

The user changes first, the capability goes last, rather than binding as root and switching afterwards,
so that every file the server makes while it starts (spool folders, journals, databases, the self-check
folder) belongs to the service user from the start, and nothing ever runs as root after the
configuration is read. The effect is the one `bind then setuid` gives: after start-up the process has the
service user's rights and no capability (`/proc/<pid>/status`: Uid, CapEff, CapPrm, CapAmb all of it).

Under systemd the unit starts the server as the user with `AmbientCapabilities=CAP_NET_BIND_SERVICE`
(deploy/units.py): `switch_user` then has nothing to do and `drop_capabilities` clears the ambient set.
`server.user = "root"` keeps root (logged as config.weakened); it exists for test rigs whose folders the
service user cannot reach.
"""

from __future__ import annotations

import ctypes
import errno
import grp
import logging
import os
import pwd
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from mailbastion.config import Settings
from mailbastion.core.errors import ConfigError

log = logging.getLogger("mailbastion.runtime")

CAP_NET_BIND_SERVICE = 10
_CAP_VERSION_3 = 0x20080522
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _capset(mask: int) -> None:
    """Set the effective and permitted capability sets to `mask` (capabilities 0-31), inheritable to none."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    _check(_libc().capset(ctypes.byref(header), data), "capset")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    uid: int
    gid: int


def service_identity(name: str) -> Identity:
    """The user `name` as the system knows it. Raises ConfigError when there is no such user."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"the service user {name!r} does not exist: create it (useradd --system --user-group "
                          f"--no-create-home --shell /usr/sbin/nologin {name}; `mailbastion init` and `make run` "
                          "do this when run as root), or start serve as an unprivileged user",
                          key="server.user") from None
    return Identity(name, pw.pw_uid, pw.pw_gid)


def switch_user(settings: Settings) -> Identity | None:
    """As root: become `server.user` (its group and supplementary groups too), able to bind ports below 1024
    until `drop_capabilities`. Not root, or `server.user = "root"`: nothing changes (None). Raises
    ConfigError when the user does not exist, or when, once switched, it cannot read Python, the
    configuration or data_dir (the message says what fixes it): the process must then exit.

    Call it before any thread exists. The real and effective user become the service user at once (files
    made from now on are its own); the saved user stays root, with the permitted capabilities cut down to
    CAP_NET_BIND_SERVICE, so that `drop_capabilities` can end with one setresuid, which the C library
    applies to every thread and which clears every capability of each (capabilities(7), "Effect of user ID
    changes on capabilities"). Until then the process could take back an effective user of root, owning
    root's files but with no capability beyond binding: that lasts while the roles start."""
    if os.geteuid() != 0 or settings.server.user == "root":
        return None
    who = service_identity(settings.server.user)
    os.initgroups(who.user, who.gid)
    os.setresgid(who.gid, who.gid, who.gid)
    os.setresuid(who.uid, who.uid, 0)  # effective set emptied (euid 0 -> user); permitted kept until capset
    _capset(1 << CAP_NET_BIND_SERVICE)
    _check_reach(settings, who)
    log.info("running as user %s (uid %d, gid %d); binding ports below 1024 until started", who.user, who.uid,
             who.gid)
    return who


def _python_folders() -> list[Path]:
    """Where this interpreter loads modules from: the standard library, site-packages, and our package."""
    import mailbastion

    folders = [Path(os.__file__).parent, Path(sysconfig.get_paths()["purelib"]), Path(mailbastion.__file__).parent]
    return list(dict.fromkeys(folders))


def _check_reach(settings: Settings, who: Identity) -> None:
    for folder in _python_folders():  # modules load lazily: every later import would fail
        if not os.access(folder, os.R_OK | os.X_OK):
            raise ConfigError(f"the service user {who.user} cannot read {folder}, where this Python loads its "
                              "modules from: install Python and mailbastion where every user may read them "
                              "(not below /root)", key="server.user")
    base = settings.base_dir
    fix = f"chown -R {who.user}:{grp.getgrgid(who.gid).gr_name} {base} (mailbastion init does it when run as root)"
    if settings.source is not None and not os.access(settings.source, os.R_OK):
        raise ConfigError(f"the service user {who.user} cannot read the configuration file: give its group read "
                          f"access (chgrp {grp.getgrgid(who.gid).gr_name} FILE; chmod 640 FILE) and make the "
                          "folders above it searchable", file=str(settings.source), key="server.user")
    if not os.access(base, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"the service user {who.user} cannot write data_dir {base} (or a folder above it is "
                          f"not searchable): {fix}", key="server.user")


def drop_capabilities() -> None:
    """Leave no capability to any thread of this process. After `switch_user`: the saved user becomes the
    service user too, which clears the permitted, effective and ambient sets of every thread. Started as
    an unprivileged user (systemd with AmbientCapabilities): this thread's sets are cleared; threads the
    start-up made keep at most what the unit granted (CAP_NET_BIND_SERVICE). Root that stays root
    (`server.user = "root"`) is left alone."""
    real, effective, saved = os.getresuid()
    if effective == 0:
        return
    if saved == 0:
        os.setresuid(real, effective, effective)  # glibc applies it to every thread (setxid broadcast)
        return
    held = capabilities()
    if not (held.get("CapPrm", 0) or held.get("CapAmb", 0)):
        return  # nothing to give up (and no syscall a unit's filter may refuse)
    libc = _libc()
    if libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
        _check(-1, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    _capset(0)


def capabilities(pid: int | str = "self") -> dict[str, int]:
    """CapEff, CapPrm, CapAmb... of a process, from /proc (tests, the self-check)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Cap"):
                name, _, value = line.partition(":")
                out[name] = int(value.strip(), 16)
    return out


__all__ = ["CAP_NET_BIND_SERVICE", "Identity", "capabilities", "drop_capabilities", "service_identity",
           "switch_user"]
