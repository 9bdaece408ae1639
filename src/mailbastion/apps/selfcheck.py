"""A running process says what it holds: the modules it loaded and the files it has open.

The DMZ gateway must hold no passwords, no mailboxes and no directory (measure 5): `mailbastion serve
--role gateway` never imports password hashing, the ORM, the directory or audit databases or the mailbox
code, and never opens those files. `serve` writes this report on SIGUSR2 (apps/process.py), so a test,
an administrator or `mailbastion audit` can see it from the running process itself rather than trust
the code's intent.

    {"role": "gateway", "pid": 4242, "modules": [...], "open_files": [...],
     "must_not_hold": {"modules": [], "files": []}, "clean": true}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mailbastion.config import Settings

# What the gateway role must never load: password hashing, the ORM and migrations, the directory's
# database code (the address-only recipient map is allowed), the audit database, the MDA.
GATEWAY_MUST_NOT_LOAD = (
    "argon2", "sqlalchemy", "alembic", "psycopg",
    "mailbastion.directory.store", "mailbastion.directory.database", "mailbastion.directory.models",
    "mailbastion.directory.passwords", "mailbastion.directory.cache", "mailbastion.directory.snapshot",
    "mailbastion.audit", "mailbastion.mailbox",
)


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def open_files(pid: int | str = "self") -> list[str]:
    """The paths behind the process's open file descriptors (sockets and pipes left out)."""
    out = []
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.is_dir() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/"):
            out.append(target)
    return sorted(set(out))


def gateway_must_not_open(settings: Settings) -> list[Path]:
    """Files the gateway role never opens: the directory and audit databases, the mailboxes, the CA key."""
    paths = [settings.path(settings.mailbox.root), settings.path(settings.tls.ca_key)]
    for url in (settings.directory.url, settings.audit.url):  # directory_url refuses on a gateway
        file = settings.sqlite_file(url)
        if file is not None:
            paths.append(file)
    return paths


def report(settings: Settings, role: str) -> dict[str, object]:
    modules = sorted(m for m in sys.modules if "." not in m or m.startswith("mailbastion."))
    files = open_files()
    held_modules: list[str] = []
    held_files: list[str] = []
    if role == "gateway":
        held_modules = sorted(m for m in sys.modules if any(_matches(m, p) for p in GATEWAY_MUST_NOT_LOAD))
        forbidden = [str(p) for p in gateway_must_not_open(settings)]
        held_files = [f for f in files if any(f == p or f.startswith((p + "/", p + "-"))
                                              for p in forbidden)]
    return {"role": role, "pid": os.getpid(), "time": time.time(), "modules": modules, "open_files": files,
            "must_not_hold": {"modules": held_modules, "files": held_files},
            "clean": not held_modules and not held_files}


def report_path(settings: Settings, role: str, pid: int | None = None) -> Path:
    return settings.path("run") / f"selfcheck-{role}-{pid or os.getpid()}.json"


def write_report(settings: Settings, role: str) -> Path:
    """Write this process's report atomically; returns its path."""
    path = report_path(settings, role)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report(settings, role), indent=1))
    os.replace(tmp, path)
    return path


__all__ = ["GATEWAY_MUST_NOT_LOAD", "gateway_must_not_open", "open_files", "report", "report_path",
           "write_report"]
